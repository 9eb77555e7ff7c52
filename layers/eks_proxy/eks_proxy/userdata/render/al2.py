"""Amazon Linux 2 (legacy: EKS stopped publishing AL2 AMIs in Nov 2025): one ``text/cloud-boothook`` part.

The boothook (see boothook.py) gives containerd, kubelet and sandbox-image (the AL2 EKS AMI unit that pulls the
pause image from ECR with the AWS CLI) the proxy environment through systemd drop-ins, before bootstrap.sh starts
them in cloud-final. Docker is not configured: EKS has used containerd since 1.24.
"""

from __future__ import annotations

from eks_proxy.userdata.render import ProxyEnvironment, RenderedPart
from eks_proxy.userdata.render.boothook import boothook_script

UNITS = ("containerd", "kubelet", "sandbox-image")


def render_parts(env: ProxyEnvironment, fingerprint: str) -> list[RenderedPart]:
    """Our MIME parts for an AL2 node, in the order they go into the user data."""
    return [RenderedPart("text/cloud-boothook", boothook_script(env, fingerprint, UNITS))]
