"""eks-proxy: keeps the HTTP(S) proxy configuration of EKS managed node groups right."""

__version__ = "0.1.0"
