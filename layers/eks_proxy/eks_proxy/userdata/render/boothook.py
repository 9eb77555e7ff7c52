"""The cloud-boothooks of al2 and al2023: proxy environment for systemd units, written at every boot.

Two heads, one shared tail (user data is size-limited, so the script is terse):

- al2 (:func:`boothook_script`): the values are in the script (``P`` http proxy, ``S`` https proxy, ``N`` NO_PROXY),
  single-quoted. They are validated before they get here (no quotes, whitespace or shell metacharacters).
- al2023 (:func:`nodeconfig_boothook`): the values are written ONCE, in our NodeConfig part; the boothook reads
  them back from cloud-init's copy of the user data (``/var/lib/cloud/instance/user-data.txt``, written by
  cloud-init, mode 0600, before it runs any boothook). It takes the lines ``<KEY>: &<anchor> "<value>"`` between
  our marker (the fingerprint, which our NodeConfig and our boothook share) and the next MIME delimiter, keeps a
  value only when it consists of the characters a validated value can have (lower-case letters, digits and
  ``. : / , [ ] -``), and the last one wins (as in nodeadm's merge). HTTPS_PROXY falls back to HTTP_PROXY (our
  NodeConfig writes it as an alias when they are equal). Nothing read there is ever executed or evaluated: it is
  only written, as data, into the environment file. No value found (a cloud-init without that file, a user data
  re-encoded on the way): the boothook writes nothing and exits 0 (fail soft; on AMIs whose nodeadm knows
  ``spec.instance.environment`` the NodeConfig alone already configures every unit).

The shared tail: fetch the VPC CIDRs from IMDSv2 (token first, 1 s connect and 2 s total timeouts, never through
a proxy) and append them to NO_PROXY, failing soft (NO_PROXY without them still works); write one environment file
``/etc/eks-proxy/proxy.env`` (upper and lower case); point a systemd drop-in ``<unit>.service.d/zz-eks-proxy.conf``
at it for each unit; ``systemctl daemon-reload``. Boothooks run on every boot and every step overwrites the same
files with the same content, so running it again is harmless. Only CIDR-shaped words (digits and dots, a slash,
digits) are taken from the IMDS answer: an HTML page answered with 200 must not turn "1" or "1.0" into NO_PROXY
entries, which Go would match as suffixes of IP hosts (a word with a slash is either a CIDR or matches no host).

The CA bundle install step of a TLS-inspecting proxy (:func:`ca_step`) goes right after the marker line, before
the head. It must not depend on the proxy values (the al2023 head exits early when it finds none)
and must run before containerd, kubelet and nodeadm-run start, which every boothook does (they start in or after
cloud-final). Write it as data (a quoted here-document with a fixed delimiter holding validated PEM), idempotent
(same file, same content, then ``update-ca-trust extract``), and failing soft like the rest.
"""

from __future__ import annotations

from eks_proxy.userdata.render import ProxyEnvironment, marker_comment

ENV_FILE = "/etc/eks-proxy/proxy.env"
# Sorts after other drop-ins: for the same variable, the EnvironmentFile= read last wins, and a leftover
# hand-made drop-in (e.g. proxy.conf -> /etc/environment) must not override ours.
DROP_IN_NAME = "zz-eks-proxy.conf"
IMDS = "http://169.254.169.254/latest"
# cloud-init's raw copy of the instance user data (Init._store_userdata), written before boothooks run.
CLOUD_INIT_USER_DATA = "/var/lib/cloud/instance/user-data.txt"
# Characters a validated proxy URL or NO_PROXY list can contain (see proxy/value.py); a value read back from the
# user data with anything else is ignored.
VALUE_CHARACTERS = "][a-z0-9.:/,-"
# The trust store anchor of a TLS-inspecting proxy's CA bundle on Amazon Linux (ca-certificates / p11-kit).
CA_ANCHOR = "/etc/pki/ca-trust/source/anchors/eks-proxy.pem"


def ca_step(pem: str) -> str:
    """The CA bundle install step (the lines of the CA step slot): empty without a bundle.

    The validated, normalized PEM (only BEGIN/END lines and base64, never the delimiter) goes into the anchor as a
    quoted here-document (data, never expanded), then ``update-ca-trust extract`` rebuilds
    /etc/pki/tls/certs/ca-bundle.crt, which containerd, kubelet and nodeadm-run read when they start (after this
    boothook). Every boot writes the same file and extracts again: idempotent; a failure leaves the proxy step to run.

    >>> ca_step("")
    ''
    """
    if not pem:
        return ""
    return f"A={CA_ANCHOR}\nmkdir -p ${{A%/*}}&&cat >$A <<'EOF'\n{pem}EOF\nupdate-ca-trust extract\n"


def boothook_script(env: ProxyEnvironment, fingerprint: str, units: tuple[str, ...]) -> str:
    """A POSIX sh boothook carrying the values itself (al2) that gives ``units`` the proxy environment.

    >>> from eks_proxy.userdata.render import ProxyEnvironment
    >>> boothook_script(ProxyEnvironment("http://p:1", "http://p:1", ("localhost",)), "0" * 16, ("kubelet",))[:9]
    '#!/bin/sh'
    """
    https = "$P" if env.https_proxy == env.http_proxy else f"'{env.https_proxy}'"
    head = f"P='{env.http_proxy}' N='{env.no_proxy_csv}'\nS={https}\n"
    return _script(fingerprint, head, units, read_vpc_cidrs=env.read_vpc_cidrs, ca_pem=env.ca_bundle_pem)


def nodeconfig_boothook(
    fingerprint: str, units: tuple[str, ...], *, read_vpc_cidrs: bool = True, ca_pem: str = ""
) -> str:
    """A POSIX sh boothook (al2023) that reads the values from our NodeConfig part (see the module docstring).

    >>> print(nodeconfig_boothook("0" * 16, ("kubelet",)).splitlines()[3])
    P=$(g HTTP_PROXY) S=$(g HTTPS_PROXY) N=$(g NO_PROXY)
    """
    head = (
        f'g(){{ sed -n "/fingerprint={fingerprint}/,/^--/s|^ *$1: &[a-z] \\"\\([{VALUE_CHARACTERS}]*\\)\\"\\r*$|\\1|p" '
        f"{CLOUD_INIT_USER_DATA}|tail -n1;}}\n"
        'P=$(g HTTP_PROXY) S=$(g HTTPS_PROXY) N=$(g NO_PROXY)\n[ "$P" ]||exit 0\nS=${S:-$P}\n'
    )
    return _script(fingerprint, head, units, read_vpc_cidrs=read_vpc_cidrs, ca_pem=ca_pem)


# Appends the VPC CIDRs read from IMDSv2 to N (fail soft: any failure leaves N as it was).
_VPC_CIDRS_FROM_IMDS = f"""I={IMDS} V=
c(){{ curl -sf --noproxy '*' --connect-timeout 1 -m 2 "$@";}}
T=$(c -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$I/api/token") &&
h="X-aws-ec2-metadata-token: $T" && M=$(c -H "$h" "$I/meta-data/mac") &&
V=$(c -H "$h" "$I/meta-data/network/interfaces/macs/$M/vpc-ipv4-cidr-blocks"|grep -Eo '[0-9.]+/[0-9]+'|tr '\\n' ,)
N="$N${{V:+,${{V%,}}}}"
"""


def _script(fingerprint: str, head: str, units: tuple[str, ...], *, read_vpc_cidrs: bool, ca_pem: str = "") -> str:
    imds = _VPC_CIDRS_FROM_IMDS if read_vpc_cidrs else ""
    return f"""#!/bin/sh
{marker_comment(fingerprint)}
{ca_step(ca_pem)}{head}{imds}E={ENV_FILE}
mkdir -p "${{E%/*}}"
printf '%s\\n' "HTTP_PROXY=$P" "http_proxy=$P" "HTTPS_PROXY=$S" "https_proxy=$S" "NO_PROXY=$N" "no_proxy=$N" >"$E"
for u in {" ".join(units)}; do d=/etc/systemd/system/$u.service.d
mkdir -p $d && printf '[Service]\\nEnvironmentFile=%s\\n' $E >$d/{DROP_IN_NAME}; done
systemctl daemon-reload
"""
