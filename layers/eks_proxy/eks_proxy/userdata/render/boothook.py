"""The cloud-boothook shared by al2 and al2023: proxy environment for systemd units, read at every boot.

What it does, tersely (user data is size-limited): fetch the VPC CIDRs from IMDSv2 (token first, 1 s timeouts,
never through a proxy) and append them to NO_PROXY, failing soft (NO_PROXY without them still works); write one
environment file ``/etc/eks-proxy/proxy.env`` (upper and lower case); point a systemd drop-in
``<unit>.service.d/zz-eks-proxy.conf`` at it for each unit; ``systemctl daemon-reload``. Boothooks run on every boot
and every step here overwrites the same files with the same content, so running it again is harmless.

The values are validated before they get here (no quotes, whitespace or shell metacharacters), and are still
single-quoted. Only CIDR-shaped words (digits and dots, a slash, digits) are taken from the IMDS answer: an HTML page
answered with 200 must not turn "1" or "1.0" into NO_PROXY entries, which Go would match as suffixes of IP hosts
(a word with a slash is either a CIDR or matches no host at all).
"""

from __future__ import annotations

from eks_proxy.userdata.render import ProxyEnvironment, marker_comment

ENV_FILE = "/etc/eks-proxy/proxy.env"
# Sorts after other drop-ins: for the same variable, the EnvironmentFile= read last wins, and a leftover
# hand-made drop-in (e.g. proxy.conf -> /etc/environment) must not override ours.
DROP_IN_NAME = "zz-eks-proxy.conf"
IMDS = "http://169.254.169.254/latest"


def boothook_script(env: ProxyEnvironment, fingerprint: str, units: tuple[str, ...]) -> str:
    """A POSIX sh boothook that gives ``units`` the proxy environment (works under ``set -u``).

    >>> from eks_proxy.userdata.render import ProxyEnvironment
    >>> boothook_script(ProxyEnvironment("http://p:1", "http://p:1", ("localhost",)), "0" * 16, ("kubelet",))[:9]
    '#!/bin/sh'
    """
    https = "$P" if env.https_proxy == env.http_proxy else f"'{env.https_proxy}'"
    return f"""#!/bin/sh
{marker_comment(fingerprint)}
P='{env.http_proxy}' N='{env.no_proxy_csv}'
S={https} I={IMDS} V=
c(){{ curl -sf --noproxy '*' --connect-timeout 1 -m 2 "$@";}}
T=$(c -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$I/api/token") &&
h="X-aws-ec2-metadata-token: $T" && M=$(c -H "$h" "$I/meta-data/mac") &&
V=$(c -H "$h" "$I/meta-data/network/interfaces/macs/$M/vpc-ipv4-cidr-blocks"|grep -Eo '[0-9.]+/[0-9]+'|tr '\\n' ,)
N="$N${{V:+,${{V%,}}}}" E={ENV_FILE}
mkdir -p "${{E%/*}}"
printf '%s\\n' "HTTP_PROXY=$P" "http_proxy=$P" "HTTPS_PROXY=$S" "https_proxy=$S" "NO_PROXY=$N" "no_proxy=$N" >"$E"
for u in {" ".join(units)}; do
d="/etc/systemd/system/$u.service.d"
mkdir -p "$d" && printf '[Service]\\nEnvironmentFile=%s\\n' "$E" >"$d/{DROP_IN_NAME}"
done
systemctl daemon-reload
"""
