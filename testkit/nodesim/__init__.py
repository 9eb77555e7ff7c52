"""Node simulation: a private-subnet EKS node, a proxy host and an "internet" host in network namespaces.

Building blocks (usable on their own, e.g. on loopback with ``netns=None``):

- :mod:`.pki`       a throw-away CA and server certificates (openssl)
- :mod:`.services`  tinyproxy, docker-registry with TLS, a fake IMDSv2; each a handle with ``url``/``port``/``stop()``
- :mod:`.image`     a tiny OCI image built in Python, pushed and pulled with skopeo
- :mod:`.netns`     namespaces, veth links, running commands or Python code inside a namespace, sweeping leftovers

The node, emulated from the sources of each component:

- :mod:`.boot`          cloud-init: MIME parts, boothooks and shell scripts run in overlays (the host is untouched)
- :mod:`.nodeadm`       nodeadm's NodeConfig merge and the environment files it writes (AL2023)
- :mod:`.systemd`       the environment systemd would start a unit with, from the node's files
- :mod:`.bottlerocket`  the environment Bottlerocket's proxy.env template gives containerd (not booted)
- :mod:`.samples`       hand-written user data: the 2020 recipe (must fail) and a minimal correct one
- :mod:`.eks`           the cluster a node joins, what EKS appends to its user data, the `eks-proxy` CLI it runs
- :mod:`.testbed`       the three-namespace topology wired together (the ``testbed`` fixture)
"""
