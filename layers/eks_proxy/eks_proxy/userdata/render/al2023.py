"""Amazon Linux 2023: a NodeConfig part plus a boothook for AMIs whose nodeadm predates the environment field.

1. ``application/node.eks.aws`` NodeConfig with ``spec.instance.environment.default`` = HTTP(S)_PROXY/NO_PROXY in
   upper and lower case. nodeadm (AMIs from release v20251007, fixed in v20251120) writes it as systemd's
   ``DefaultEnvironment`` for every unit and uses it for its own EC2/EKS calls. It is authoritative on those AMIs.
   Older nodeadm versions ignore the field (unknown fields are dropped when decoding).
2. ``text/cloud-boothook`` (boothook.py) writing drop-ins for containerd and kubelet: nodeadm's config step runs
   before cloud-init's boothooks, but nodeadm-run restarts containerd and kubelet after cloud-final, so they start
   with the drop-ins. It carries no values: it reads them back from our NodeConfig (in cloud-init's copy of the user
   data), so NO_PROXY, the largest value, is written once. On new AMIs it is redundant but consistent: the values
   are the same (a unit's own ``EnvironmentFile=`` wins over ``DefaultEnvironment``, and ours only adds the VPC
   CIDRs read from IMDS to NO_PROXY); on AMIs whose nodeadm predates the environment field it is what configures
   containerd and kubelet.

Our parts go after the user's own parts when first added (and stay where they are on refresh, unless a user's
NodeConfig part setting proxy variables has come after them: then they move last again): nodeadm merges NodeConfig
parts in MIME order with later parts winning, so a stale proxy environment in a user's NodeConfig cannot override
ours. The NO_PROXY entries of users' NodeConfig parts join ours (merge.py, userdata/nodeconfig.py). EKS appends its
own part after all of them (it sets no environment).
"""

from __future__ import annotations

from eks_proxy.userdata.render import ProxyEnvironment, RenderedPart, marker_comment
from eks_proxy.userdata.render.boothook import nodeconfig_boothook

NODECONFIG_CONTENT_TYPE = "application/node.eks.aws"
UNITS = ("containerd", "kubelet")


def nodeconfig(env: ProxyEnvironment, fingerprint: str) -> str:
    """The NodeConfig document.

    Values are double-quoted (they never contain quotes or backslashes); the lower-case keys are YAML aliases of the
    upper-case ones (nodeadm's YAML decoder resolves them) to keep the user data small. The boothook reads the lines
    ``KEY: &anchor "value"`` back (boothook.py): keep that shape when changing this document.
    """
    same = env.https_proxy == env.http_proxy
    https, https_alias = ("*p", "*p") if same else (f'&s "{env.https_proxy}"', "*s")
    return f"""{marker_comment(fingerprint)}
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    environment:
      default:
        HTTP_PROXY: &p "{env.http_proxy}"
        HTTPS_PROXY: {https}
        NO_PROXY: &n "{env.no_proxy_csv}"
        http_proxy: *p
        https_proxy: {https_alias}
        no_proxy: *n
"""


def render_parts(env: ProxyEnvironment, fingerprint: str) -> list[RenderedPart]:
    """Our MIME parts for an AL2023 node, in the order they go into the user data."""
    return [
        RenderedPart(NODECONFIG_CONTENT_TYPE, nodeconfig(env, fingerprint)),
        RenderedPart(
            "text/cloud-boothook",
            nodeconfig_boothook(fingerprint, UNITS, read_vpc_cidrs=env.read_vpc_cidrs, ca_pem=env.ca_bundle_pem),
        ),
    ]
