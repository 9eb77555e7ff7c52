"""Render figures: bytes of a fresh render per node OS, typical and worst case, the room that leaves for the user's
own user data (EC2 allows 16,384 bytes for everything), and inject throughput.

Goals: worst case <= 2,048 bytes for every OS, typical al2023 <= 1,500.

- typical: ``http://10.0.0.10:3128``, a realistic cluster: a 32-character EKS endpoint id, a known service CIDR and
  one VPC CIDR (as the engine renders it: it always knows the VPC CIDRs).
- worst: what the issue names, with long values: no service CIDR known (both EKS defaults go in), three VPC CIDRs,
  five ``no_proxy`` additions, the cluster endpoint, and separate 40-character HTTP and HTTPS proxy URLs.

- with one CA: the same, plus a TLS-inspecting proxy's CA bundle of one typical corporate CA (RSA 2048, subject
  ``/C=DE/O=Example Bank AG/CN=Example Bank TLS Inspection CA``, made by openssl here: about 1,300 bytes of PEM).
  Goal: <= 4,096 bytes.

More columns go in ``CASES``. Throughput is measured on a typical AL2023 launch template user
data (a user NodeConfig part and a shell script, CRLF as the console saves it), for a first injection and for a
no-op re-check of already injected user data, each over about one second of wall-clock time on this machine.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

from eks_proxy.proxy.ca_bundle import CaBundle, parse_ca_bundle
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig, parse_proxy_value
from eks_proxy.userdata.merge import USER_DATA_LIMIT, inject, render_userdata
from eks_proxy.userdata.node_os import NodeOS

CONFIG = parse_proxy_value("http://10.0.0.10:3128")
CONTEXT = NodeContext(
    region="eu-west-1",
    service_cidr="172.20.0.0/16",
    cluster_endpoint="https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
    vpc_cidrs=("10.0.0.0/16",),
)
WORST_CONFIG = parse_proxy_value(
    json.dumps(
        {
            "http_proxy": "http://proxy-0123456789.corp.example.com:3128",
            "https_proxy": "https://proxy-0123456789.corp.example.com:3129",
            "no_proxy": [f".team-{n}.internal.corp.example.com" for n in range(5)],
        }
    )
)
WORST_CONTEXT = NodeContext(
    region="ap-southeast-4",
    cluster_endpoint="https://0123456789ABCDEF0123456789ABCDEF.gr7.ap-southeast-4.eks.amazonaws.com",
    vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16", "192.168.0.0/16"),
)


def typical_ca() -> CaBundle:
    """One typical corporate CA, made by openssl (RSA 2048, ten years, CA:TRUE, keyCertSign)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "3650", "-subj", "/C=DE/O=Example Bank AG/CN=Example Bank TLS Inspection CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            cwd=tmp, check=True, capture_output=True,
        )  # fmt: skip
        return parse_ca_bundle((Path(tmp) / "ca.crt").read_text())


CA = typical_ca()
CASES: dict[str, tuple[ProxyConfig, NodeContext]] = {
    "typical": (CONFIG, CONTEXT),
    "worst case": (WORST_CONFIG, WORST_CONTEXT),
    "typical, one CA": (CONFIG.with_ca_bundle(CA), CONTEXT),
    "worst case, one CA": (WORST_CONFIG.with_ca_bundle(CA), WORST_CONTEXT),
}
TYPICAL = base64.b64encode(
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="==MYBOUNDARY=="\r\n\r\n'
    b"--==MYBOUNDARY==\r\nContent-Type: application/node.eks.aws\r\n\r\n---\r\n"
    b"apiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\nspec:\r\n  kubelet:\r\n    config:\r\n"
    b"      maxPods: 58\r\n    flags:\r\n      - --node-labels=team=payments\r\n\r\n"
    b'--==MYBOUNDARY==\r\nContent-Type: text/x-shellscript; charset="us-ascii"\r\n\r\n'
    b"#!/bin/bash\r\nset -euo pipefail\r\necho 'vm.max_map_count=262144' > /etc/sysctl.d/90-es.conf\r\n"
    b"sysctl --system\r\n\r\n--==MYBOUNDARY==--\r\n"
).decode()


def _ops_per_second(user_data: str, budget: float = 1.0) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        inject(user_data, CONFIG, CONTEXT, NodeOS.AL2023)
        count += 1
    return count / elapsed


def figures() -> list[tuple[str, str]]:
    rows = []
    for node_os in NodeOS:
        for case, (config, context) in CASES.items():
            size = len(render_userdata(config, context, node_os))
            rows.append(
                (
                    f"render: {node_os.value}, {case}",
                    f"{size:,} bytes, {USER_DATA_LIMIT - size:,} left for the user's own user data",
                )
            )
    rows.append(("render: the typical CA of 'one CA' (PEM)", f"{len(CA.pem):,} bytes"))
    injected = inject(TYPICAL, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(injected, str)
    rows.append(("inject: al2023 MIME (NodeConfig + script), first", f"{_ops_per_second(TYPICAL):,.0f} ops/s"))
    rows.append(("inject: same, already up to date (no-op)", f"{_ops_per_second(injected):,.0f} ops/s"))
    return rows


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<52}  {value}")
