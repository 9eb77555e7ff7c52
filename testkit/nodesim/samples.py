"""Hand-written user data used to prove the simulation can tell good from bad (independent of our renderers).

``legacy_2020_boothook`` is the hand-made recipe eks-proxy replaces (see docs: HTTP_PROXY twice, no HTTPS_PROXY,
docker.service, IMDSv1 without timeout): on the simulated node its pull must FAIL, or the simulation proves
nothing. ``reference_boothook`` is a minimal correct one (IMDSv2, env file + drop-ins) that must succeed.
"""

from __future__ import annotations

BOUNDARY = "==NODESIM=="


def mime(*parts: tuple[str, str]) -> bytes:
    """A MIME multipart user data from ``(content_type, body)`` pairs, as launch templates carry it."""
    out = [f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{BOUNDARY}"\n']
    for ctype, body in parts:
        out.append(f'--{BOUNDARY}\nContent-Type: {ctype}; charset="us-ascii"\n\n{body.rstrip()}\n')
    out.append(f"--{BOUNDARY}--\n")
    return "\n".join(out).encode()


def legacy_2020_boothook(proxy_host_port: str, vpc_cidr: str = "") -> bytes:
    """The 2020 knowledge-center recipe's shape: HTTP_PROXY set twice, never HTTPS_PROXY; IMDSv1 calls."""
    body = f"""#cloud-boothook
#!/bin/bash
PROXY="{proxy_host_port}"
MAC=$(curl -s http://169.254.169.254/latest/meta-data/mac/)
VPC_CIDR=$(curl -s http://169.254.169.254/latest/meta-data/network/interfaces/macs/$MAC/vpc-ipv4-cidr-blocks \
  | xargs | tr ' ' ',')
mkdir -p /etc/systemd/system/docker.service.d /etc/systemd/system/kubelet.service.d
cat << EOF > /etc/environment
HTTP_PROXY=http://$PROXY
HTTP_PROXY=http://$PROXY
NO_PROXY=$VPC_CIDR,localhost,127.0.0.1,169.254.169.254,.internal
EOF
printf '[Service]\\nEnvironmentFile=/etc/environment\\n' > /etc/systemd/system/docker.service.d/proxy.conf
printf '[Service]\\nEnvironmentFile=/etc/environment\\n' > /etc/systemd/system/kubelet.service.d/proxy.conf
printf '[Service]\\nEnvironmentFile=/etc/environment\\n' > /etc/systemd/system/containerd.service.d/proxy.conf \
  2>/dev/null || true
systemctl daemon-reload
"""
    return mime(("text/cloud-boothook", body))


def reference_boothook(proxy_url: str, no_proxy: str) -> str:
    """A minimal correct boothook body: IMDSv2 with timeouts, fail soft, env file + drop-ins, daemon-reload."""
    return f"""#cloud-boothook
#!/bin/sh
P='{proxy_url}'
N='{no_proxy}'
c(){{ curl -sf --noproxy '*' --connect-timeout 1 --max-time 2 "$@";}}
I=http://169.254.169.254/latest
T=$(c -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$I/api/token") &&
M=$(c -H "X-aws-ec2-metadata-token: $T" "$I/meta-data/mac") &&
V=$(c -H "X-aws-ec2-metadata-token: $T" "$I/meta-data/network/interfaces/macs/$M/vpc-ipv4-cidr-blocks" \
  | tr -cs 0-9./ ,) && N="$N,${{V%,}}"
mkdir -p /etc/nodesim-reference
printf '%s\\n' "HTTP_PROXY=$P" "http_proxy=$P" "HTTPS_PROXY=$P" "https_proxy=$P" "NO_PROXY=$N" "no_proxy=$N" \
  > /etc/nodesim-reference/proxy.env
for u in containerd kubelet; do
  mkdir -p /etc/systemd/system/$u.service.d
  printf '[Service]\\nEnvironmentFile=/etc/nodesim-reference/proxy.env\\n' > /etc/systemd/system/$u.service.d/p.conf
done
systemctl daemon-reload
"""


def reference_nodeconfig(proxy_url: str, no_proxy: str) -> str:
    """nodeadm's proxy form (spec.instance.environment.default)."""
    return f"""---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    environment:
      default:
        HTTP_PROXY: "{proxy_url}"
        HTTPS_PROXY: "{proxy_url}"
        NO_PROXY: "{no_proxy}"
        http_proxy: "{proxy_url}"
        https_proxy: "{proxy_url}"
        no_proxy: "{no_proxy}"
"""
