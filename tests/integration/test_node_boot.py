"""Node simulation: boot the user data `eks-proxy render` writes on a simulated private-subnet EKS node, then pull
an image from the node through a real proxy with exactly the environment containerd would get.

REAL: network namespaces and routing (the node's only way out is the proxy host), tinyproxy, docker-registry
(distribution v2, TLS with a test CA, image pushed at setup), skopeo (Go's container-image stack, which honours
HTTP(S)_PROXY/NO_PROXY exactly as containerd does), bash/sh running the boothooks, curl talking to the IMDS over
TCP, the `eks-proxy` CLI run as a process.
SIMULATED: cloud-init (MIME parsing, boothook/shell-script execution rules), nodeadm (NodeConfig merge and the
environment files it writes), systemd (the environment a unit gets, derived from the files; systemctl stubbed),
the instance metadata service (IMDSv2-only fake), and Bottlerocket entirely (its proxy.env template applied to
the TOML). See testkit/nodesim/ for each emulation and its source.
"""

from __future__ import annotations

import base64
import errno
import http.client
import ssl
import subprocess
from pathlib import Path

import pytest

from testkit.nodesim import bottlerocket, nodeadm, samples
from testkit.nodesim.boot import BOOTHOOK, NODECONFIG, BootResult, parse_user_data
from testkit.nodesim.eks import (
    API_HOST,
    SERVICE_CIDR,
    as_launched_by_eks,
    context_args,
    eks_proxy_cli,
)
from testkit.nodesim.image import build_oci_image, pull_image, push_image
from testkit.nodesim.pki import issue_cert, make_ca
from testkit.nodesim.services import start_registry, start_tinyproxy
from testkit.nodesim.systemd import parse_environment_file, split_words, unit_environment
from testkit.nodesim.testbed import (
    IMDS_IP,
    INSTANCE_ID,
    NODE_IP,
    PROXY_IP,
    PROXY_PORT,
    REGISTRY_NAME,
    REGISTRY_PORT,
    VPC_CIDR,
    Testbed,
)
from testkit.tools import require_tool

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")
UNITS = {"al2023": ("containerd", "kubelet"), "al2": ("containerd", "kubelet", "sandbox-image")}

netns = pytest.mark.netns


# --- how users touch it: the CLI (what EKS adds to the user data: testkit/nodesim/eks.py) --------------------------


def render(node_os: str, value: str, *, vpc_cidrs: tuple[str, ...] = ()) -> bytes:
    """`eks-proxy render ...` as a user runs it; no --vpc-cidr by default, so the boothook must read it from IMDS."""
    cmd = [eks_proxy_cli(), "render", "--value", value, "--os", node_os, *context_args(vpc_cidrs)]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout, "eks-proxy render wrote nothing"
    return done.stdout


def inject(existing: bytes, node_os: str, value: str) -> bytes:
    cmd = [eks_proxy_cli(), "inject", "--value", value, "--os", node_os, *context_args(()), "-"]
    done = subprocess.run(cmd, input=existing, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def without_parts(user_data: bytes, content_type: str) -> bytes:
    return samples.mime(*[(p.content_type, p.payload.decode()) for p in parse_user_data(user_data)
                          if p.content_type != content_type])  # fmt: skip


# --- shared assertions -------------------------------------------------------------------------------------------


def assert_clean_boot(booted: BootResult) -> None:
    assert booted.runs, "no boothook or shell script ran"
    assert not booted.failed(), [(r.part.filename, r.returncode, r.output) for r in booted.failed()]


def assert_proxy_environment(env: dict[str, str], proxy_value: str) -> list[str]:
    """Both cases of all three variables, pointing at the proxy; returns the NO_PROXY entries."""
    for variable in PROXY_VARIABLES:
        assert env.get(variable) == proxy_value, (variable, env)
    assert env.get("no_proxy") == env.get("NO_PROXY"), env
    return env["NO_PROXY"].split(",")


def assert_pulls_through_proxy(testbed: Testbed, env: dict[str, str]) -> None:
    assert testbed.proxy and testbed.image
    log_before = len(testbed.proxy.log())
    pulled = testbed.pull(env)
    assert pulled.ok, pulled.stderr
    assert pulled.file_content("hello.txt") == testbed.image.payload
    tunnel_log = testbed.proxy.log()[log_before:]
    assert f"CONNECT {REGISTRY_NAME}:{REGISTRY_PORT}" in tunnel_log and NODE_IP in tunnel_log, tunnel_log


# --- the product on the node -------------------------------------------------------------------------------------


@netns
@pytest.mark.parametrize("node_os", ["al2023", "al2"])
def test_rendered_user_data_boots_and_pulls_through_the_proxy(testbed: Testbed, node_os: str) -> None:
    assert testbed.imds
    testbed.imds.clear()
    booted = testbed.boot(as_launched_by_eks(render(node_os, testbed.proxy_value), node_os))

    assert_clean_boot(booted)
    for unit in UNITS[node_os]:
        unit_env = booted.environment(unit)
        assert not unit_env.ignored, unit_env.ignored
        no_proxy = assert_proxy_environment(unit_env.env, testbed.proxy_value)
        # VPC CIDR from IMDS at boot (not given at render), plus what render computed.
        for entry in (VPC_CIDR, SERVICE_CIDR, API_HOST, IMDS_IP, "localhost", "127.0.0.1"):
            assert entry in no_proxy, (unit, entry, no_proxy)
    # IMDSv2 only: a token first, then only authorised reads (a v1 GET would have been answered 401).
    requests = testbed.imds.requests
    assert requests and requests[0].method == "PUT" and requests[0].status == 200, requests
    assert all(r.status == 200 and (r.method == "PUT" or r.token) for r in requests), requests
    assert any(r.path.endswith("/vpc-ipv4-cidr-blocks") for r in requests), requests
    assert ["daemon-reload"] in booted.systemctl_calls
    if node_os == "al2023":
        assert booted.nodeadm and "/etc/systemd/system.conf.d/environment.conf" in booted.nodeadm.written
        assert booted.nodeadm.config["spec"]["cluster"]["name"] == "demo"  # EKS's part merged after ours
        assert_proxy_environment(booted.nodeadm.process_env, testbed.proxy_value)  # nodeadm's own EC2 calls
    else:
        dropins = (booted.root / "var/lib/nodesim-eks/containerd-dropins-at-bootstrap").read_text()
        assert dropins.strip(), "containerd had no drop-in when EKS's bootstrap part ran"

    assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


@netns
@pytest.mark.parametrize("ami", ["nodeadm-with-environment-only", "nodeadm-before-v20251007"])
def test_al2023_either_mechanism_alone_is_enough(testbed: Testbed, ami: str) -> None:
    """New AMIs: the NodeConfig alone gives every unit the proxy (even with no boothook). Older AMIs, whose nodeadm
    drops spec.instance.environment: the boothook's drop-ins alone keep containerd and kubelet right."""
    user_data = as_launched_by_eks(render("al2023", testbed.proxy_value), "al2023")
    if ami == "nodeadm-with-environment-only":
        booted = testbed.boot(without_parts(user_data, BOOTHOOK))
        # DefaultEnvironment reaches every unit, also the image-pulling soci-snapshotter of recent AMIs.
        units: tuple[str, ...] = ("containerd", "kubelet", "soci-snapshotter", "amazon-ssm-agent")
    else:
        booted = testbed.boot(user_data, nodeadm_environment=False)
        assert_clean_boot(booted)
        units = ("containerd", "kubelet")
        assert booted.nodeadm and not booted.nodeadm.written
    for unit in units:
        assert_proxy_environment(booted.environment(unit).env, testbed.proxy_value)
    assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


@netns
@pytest.mark.parametrize("node_os", ["al2", "al2023"])
def test_second_boot_is_idempotent(testbed: Testbed, node_os: str) -> None:
    """Boothooks run on every boot: a reboot rewrites the same files with the same content and nothing more."""
    user_data = as_launched_by_eks(render(node_os, testbed.proxy_value), node_os)
    disk = testbed.new_disk(node_os)
    first = testbed.boot(user_data, disk)
    written_first = disk.written()
    env_first = {u: first.environment(u).env for u in UNITS[node_os]}
    second = testbed.boot(user_data, disk)
    assert_clean_boot(first)
    assert_clean_boot(second)
    assert disk.written() == written_first
    assert {u: second.environment(u).env for u in UNITS[node_os]} == env_first
    if node_os == "al2":
        sandbox = [p for p in written_first if p.startswith("/etc/systemd/system/sandbox-image.service.d/")]
        assert sandbox, sorted(written_first)
    assert_pulls_through_proxy(testbed, second.environment("containerd").env)


@netns
@pytest.mark.parametrize("encoding", ["lf", "crlf", "base64"])
def test_injected_into_existing_user_data_boots_and_leaves_the_users_part_alone(
    testbed: Testbed, encoding: str
) -> None:
    """`eks-proxy inject` into a launch template that already has the user's own script (LF, CRLF, or base64 as
    the EC2 API returns it; EC2 hands the node the decoded bytes): the node gets the proxy, and the user's part
    runs exactly as it did without us (cloud-init converts CRLF to LF in scripts)."""
    existing = samples.mime(
        ("text/x-shellscript", "#!/bin/sh\nmkdir -p /var/lib/acme && echo ok > /var/lib/acme/done\n")
    )
    if encoding == "crlf":
        existing = existing.replace(b"\n", b"\r\n")
    injected = inject(base64.b64encode(existing) if encoding == "base64" else existing, "al2", testbed.proxy_value)
    on_the_node = base64.b64decode(injected, validate=True) if encoding == "base64" else injected

    def users_part(booted: BootResult) -> list[tuple[int, bool]]:
        runs = [r for r in booted.runs if b"/var/lib/acme" in r.part.payload]
        return [(r.returncode, (booted.root / "var/lib/acme/done").exists()) for r in runs]

    alone = testbed.boot(existing)
    booted = testbed.boot(on_the_node)
    assert users_part(booted) == users_part(alone) == [(0, True)]
    ours = [r for r in booted.runs if r.part.content_type == BOOTHOOK]
    assert ours and all(r.returncode == 0 for r in ours), ours
    assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


@netns
@pytest.mark.parametrize("node_os", ["al2", "al2023"])
def test_inject_over_the_hand_made_2020_boothook_wins(testbed: Testbed, node_os: str) -> None:
    """The migration users face: their launch template still carries the hand-made boothook (here pointing at a
    dead port). After `eks-proxy inject` both run on the node, and ours must win for containerd and kubelet."""
    legacy = samples.legacy_2020_boothook(testbed.dead_proxy_value.removeprefix("http://"))
    booted = testbed.boot(as_launched_by_eks(inject(legacy, node_os, testbed.proxy_value), node_os))
    assert len([r for r in booted.runs if r.part.content_type == BOOTHOOK]) == 2  # theirs and ours both ran
    kubelet = booted.environment("kubelet")
    assert "/etc/environment" in kubelet.sources  # the hand-made drop-in is still there...
    assert_proxy_environment(kubelet.env, testbed.proxy_value)  # ...and loses to ours
    assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


@netns
@pytest.mark.parametrize("imds_fault", ["not-started", "unreachable", "hanging"])
@pytest.mark.parametrize("node_os", ["al2023", "al2"])
def test_imds_down_boot_fails_soft(testbed: Testbed, node_os: str, imds_fault: str) -> None:
    """IMDS not listening (refused), its packets silently dropped (as with a hop limit too low), or accepting and
    never answering: the boothook gives up after its own short timeouts (a boot still running after 30 s raises
    BootError), the proxy still works, and NO_PROXY just lacks the VPC CIDR unless it was known at render time."""
    faults = {
        "not-started": testbed.imds_stopped,
        "unreachable": testbed.imds_unreachable,
        "hanging": testbed.imds_hanging,
    }
    with faults[imds_fault]():
        booted = testbed.boot(as_launched_by_eks(render(node_os, testbed.proxy_value), node_os), timeout=30)
        with_render_time_cidr = testbed.boot(
            as_launched_by_eks(render(node_os, testbed.proxy_value, vpc_cidrs=(VPC_CIDR,)), node_os), timeout=30
        )
        assert_clean_boot(booted)
        assert_clean_boot(with_render_time_cidr)
        no_proxy = assert_proxy_environment(booted.environment("containerd").env, testbed.proxy_value)
        assert VPC_CIDR not in no_proxy
        assert SERVICE_CIDR in no_proxy
        env = with_render_time_cidr.environment("containerd").env
        assert VPC_CIDR in assert_proxy_environment(env, testbed.proxy_value)
        assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


@netns
def test_bottlerocket_settings_give_containerd_the_proxy(testbed: Testbed) -> None:
    """SIMULATED: Bottlerocket is not booted. We parse the rendered TOML (plus the settings EKS adds) and apply
    Bottlerocket's own proxy.env template to get containerd's environment: HTTPS_PROXY from settings.network.
    https-proxy (no HTTP_PROXY exists there), NO_PROXY = no-proxy list + localhost, 127.0.0.1 and the API host.
    The pull from the node with that environment is real."""
    user_data = as_launched_by_eks(render("bottlerocket", testbed.proxy_value), "bottlerocket")
    env = bottlerocket.containerd_environment(user_data)
    assert env["HTTPS_PROXY"] == env["https_proxy"]
    assert env["HTTPS_PROXY"].removeprefix("http://") == f"{PROXY_IP}:{PROXY_PORT}"
    assert "HTTP_PROXY" not in env
    no_proxy = env["NO_PROXY"].split(",")
    assert no_proxy[-3:] == ["localhost", "127.0.0.1", API_HOST], no_proxy
    assert SERVICE_CIDR in no_proxy and IMDS_IP in no_proxy
    assert_pulls_through_proxy(testbed, env)


TEAMMATES_PROXY_NODECONFIG = """apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    environment:
      default:
        HTTP_PROXY: {proxy}
        HTTPS_PROXY: {proxy}
        NO_PROXY: registry.team.internal,localhost
"""


@netns
@pytest.mark.parametrize("ami", ["nodeadm-with-environment", "nodeadm-before-v20251007"])
def test_al2023_a_teammates_later_proxy_nodeconfig_loses_to_ours_after_inject(testbed: Testbed, ami: str) -> None:
    """A teammate appends a NodeConfig with another (here: dead) proxy after ours. nodeadm's merge, later part wins,
    gives the node THEIR proxy; `eks-proxy inject` (what the engine's refresh runs) moves ours last and keeps their
    NO_PROXY entries, and the node boots with our proxy on both nodeadm generations."""
    ours = [(p.content_type, p.payload.decode()) for p in parse_user_data(render("al2023", testbed.proxy_value))]
    teammate = (NODECONFIG, TEAMMATES_PROXY_NODECONFIG.format(proxy=testbed.dead_proxy_value))
    later = samples.mime(*ours, teammate)
    nodeconfigs = [p.payload for p in parse_user_data(later) if p.content_type == NODECONFIG]
    before = nodeadm.load_documents(nodeconfigs)["spec"]["instance"]["environment"]["default"]
    assert before["HTTPS_PROXY"] == testbed.dead_proxy_value  # the problem: their part wins

    fixed = inject(later, "al2023", testbed.proxy_value)
    booted = testbed.boot(as_launched_by_eks(fixed, "al2023"), nodeadm_environment=ami == "nodeadm-with-environment")
    assert_clean_boot(booted)
    for unit in UNITS["al2023"]:
        no_proxy = assert_proxy_environment(booted.environment(unit).env, testbed.proxy_value)
        assert "registry.team.internal" in no_proxy and VPC_CIDR in no_proxy, (unit, no_proxy)
    assert booted.nodeadm
    if ami == "nodeadm-with-environment":
        assert_proxy_environment(booted.nodeadm.process_env, testbed.proxy_value)  # nodeadm's own EC2 calls
    assert_pulls_through_proxy(testbed, booted.environment("containerd").env)


def test_bottlerocket_keeps_the_teams_no_proxy_entries() -> None:
    """Bottlerocket: an existing no-proxy list is kept after ours (it was replaced before)."""
    existing = b'[settings.network]\nhttps-proxy = "10.9.9.9:8080"\nno-proxy = ["registry.team.internal"]\n'
    user_data = as_launched_by_eks(inject(existing, "bottlerocket", "http://10.0.0.10:3128"), "bottlerocket")
    env = bottlerocket.containerd_environment(user_data)
    assert env["HTTPS_PROXY"] == "http://10.0.0.10:3128"
    no_proxy = env["NO_PROXY"].split(",")
    assert "registry.team.internal" in no_proxy and no_proxy.index("registry.team.internal") > no_proxy.index(IMDS_IP)


# --- controls: the test bed must be able to fail -----------------------------------------------------------------


@netns
def test_control_node_has_no_route_but_the_proxy(testbed: Testbed) -> None:
    assert testbed.connect_direct() == errno.ENETUNREACH
    assert "unreachable" in testbed.route_to_registry().lower()
    pulled = testbed.pull({})  # no proxy configuration at all: what a node without our user data has
    assert not pulled.ok
    assert "network is unreachable" in pulled.stderr, pulled.stderr


@netns
@pytest.mark.parametrize("node_os", ["al2023", "al2", "bottlerocket"])
def test_control_dead_proxy_port_fails(testbed: Testbed, node_os: str) -> None:
    user_data = as_launched_by_eks(render(node_os, testbed.dead_proxy_value), node_os)
    if node_os == "bottlerocket":
        env = bottlerocket.containerd_environment(user_data)
    else:
        booted = testbed.boot(user_data)
        assert_clean_boot(booted)
        env = booted.environment("containerd").env
        assert_proxy_environment(env, testbed.dead_proxy_value)
    pulled = testbed.pull(env)
    assert not pulled.ok
    assert "proxyconnect" in pulled.stderr and "connection refused" in pulled.stderr, pulled.stderr


@netns
def test_control_the_2020_boothook_cannot_pull(testbed: Testbed) -> None:
    """The hand-made recipe eks-proxy replaces: IMDSv1 is refused, no HTTPS_PROXY, docker not containerd. The
    simulation must see it fail, and a minimal correct boothook succeed, or it proves nothing."""
    assert testbed.imds
    testbed.imds.clear()
    legacy = testbed.boot(samples.legacy_2020_boothook(f"{PROXY_IP}:{PROXY_PORT}"))
    assert testbed.imds.requests and all(r.status == 401 for r in testbed.imds.requests), testbed.imds.requests
    assert not testbed.pull(legacy.environment("containerd").env).ok
    kubelet = legacy.environment("kubelet").env
    assert "HTTPS_PROXY" not in kubelet and kubelet.get("HTTP_PROXY") == f"http://{PROXY_IP}:{PROXY_PORT}"

    reference = testbed.boot(
        samples.mime(("text/cloud-boothook", samples.reference_boothook(testbed.proxy_value, "localhost")))
    )
    assert_clean_boot(reference)
    assert_pulls_through_proxy(testbed, reference.environment("containerd").env)


@netns
def test_boot_runs_parts_like_cloud_init_and_never_touches_the_host(testbed: Testbed) -> None:
    """The simulator itself: boothooks before shell scripts whatever the MIME order, INSTANCE_ID for boothooks, a
    failing part does not stop the others, systemctl (even by absolute path) is the stub, and every write lands
    in the node's disk, none on the host."""
    tag = testbed.run_id
    script = "#!/bin/sh\ncat /etc/nodesim-order > /var/lib/nodesim-order-seen\n"
    hook = f"""#cloud-boothook
#!/bin/sh
echo "$INSTANCE_ID" > /etc/nodesim-order
mkdir -p /usr/local/lib/nodesim-{tag} /root/nodesim-{tag}
echo x > /usr/local/lib/nodesim-{tag}/f; echo x > /root/nodesim-{tag}/f; echo x > /tmp/nodesim-{tag}
/usr/bin/systemctl restart containerd
"""
    failing = "#cloud-boothook\n#!/bin/sh\nexit 3\n"
    booted = testbed.boot(samples.mime(("text/x-shellscript", script), (BOOTHOOK, failing), (BOOTHOOK, hook)))
    assert [r.returncode for r in booted.runs] == [3, 0, 0]  # boothooks first (in order), then the script
    assert (booted.root / "var/lib/nodesim-order-seen").read_text().strip() == INSTANCE_ID
    assert booted.systemctl_calls == [["restart", "containerd"]]
    written = booted.disk.written()
    for path in (f"/usr/local/lib/nodesim-{tag}/f", f"/root/nodesim-{tag}/f", "/etc/nodesim-order"):
        assert path in written
        assert not Path(path).exists(), f"{path} leaked onto the host"
    assert not Path(f"/tmp/nodesim-{tag}").exists()


# --- the simulator's own parsers (no namespaces needed) ----------------------------------------------------------


def test_systemd_precedence(tmp_path: Path) -> None:
    """DefaultEnvironment < Environment= (unit, then drop-ins by name; empty resets) < EnvironmentFile=; a drop-in
    in /etc shadows the same name in /usr/lib."""
    files = {
        "etc/systemd/system.conf.d/env.conf": '[Manager]\nDefaultEnvironment="A=default" B=default C=default\n',
        "usr/lib/systemd/system/demo.service": "[Service]\nEnvironment=X=dropped\nExecStart=/bin/true\n",
        "usr/lib/systemd/system/demo.service.d/10-x.conf": "[Service]\nEnvironment=B=vendor\n",
        "etc/systemd/system/demo.service.d/10-x.conf": "[Service]\nEnvironment=\nEnvironment=B=unit\n",
        "etc/systemd/system/demo.service.d/20-y.conf": "[Service]\nEnvironmentFile=-/etc/missing\n"
        "EnvironmentFile=/etc/demo.env\nEnvironment=C=unit\n",
        "etc/demo.env": "C=file\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert unit_environment(tmp_path, "demo").env == {"A": "default", "B": "unit", "C": "file"}
    assert unit_environment(tmp_path, "other").env == {"A": "default", "B": "default", "C": "default"}


def test_nodeadm_merges_nodeconfig_parts_later_wins(tmp_path: Path) -> None:
    ours = samples.reference_nodeconfig("http://ours:3128", "localhost").encode()
    users = b"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  instance:\n    environment:\n"
    users += b"      default:\n        HTTPS_PROXY: http://users:8080\n      containerd:\n        GODEBUG: x=1\n"
    result = nodeadm.apply([ours, users], tmp_path)
    assert result.process_env["HTTPS_PROXY"] == "http://users:8080"
    assert result.process_env["HTTP_PROXY"] == "http://ours:3128"
    env = unit_environment(tmp_path, "containerd").env
    assert env["HTTPS_PROXY"] == "http://users:8080" and env["GODEBUG"] == "x=1"
    with pytest.raises(nodeadm.NodeConfigError, match="unknown key"):
        nodeadm.apply([ours.replace(b"default:", b"defaults:")], tmp_path)


def test_systemd_environment_quoting_rules() -> None:
    assert split_words('"A=b c" D=e\\tf') == ["A=b c", "D=e\tf"]
    assert split_words("A=\"x y\" B='1 2'") == ["A=x y", "B=1 2"]
    assert split_words('"NO_PROXY=a,b\\x2cc"') == ["NO_PROXY=a,b,c"]
    env, ignored = parse_environment_file(
        "# comment\nA=1\nB=\"two words\"\nC='x y'  \nexport D=4\nE=trailing   \nF=a\\\nb\n"
    )
    assert env == {"A": "1", "B": "two words", "C": "x y", "E": "trailing", "F": "ab"}
    assert ignored == ["invalid line 'export D=4'"]


def test_cloud_init_needs_a_shebang_and_mime_version() -> None:
    assert [p.content_type for p in parse_user_data(b"#cloud-boothook\n#!/bin/sh\ntrue\n")] == [BOOTHOOK]
    no_mime_version = b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/x-shellscript\n\n'
    assert [p.content_type for p in parse_user_data(no_mime_version)] == ["text/x-not-multipart"]


# --- the building blocks on loopback (what the preflight tests reuse) --------------------------------------------


def _registry_v2_via_proxy(proxy_port: int, registry_port: int, ca: Path) -> tuple[int, str | None]:
    """GET https://localhost:<registry>/v2/ tunnelled through the proxy with CONNECT (as the preflight does)."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", proxy_port, timeout=10, context=ssl.create_default_context(cafile=str(ca))
    )
    conn.set_tunnel("localhost", registry_port)
    try:
        conn.request("GET", "/v2/")
        response = conn.getresponse()
        return response.status, response.getheader("Docker-Distribution-API-Version")
    finally:
        conn.close()


def test_building_blocks_on_loopback(tmp_path: Path) -> None:
    """Real proxy + TLS registry on loopback, no namespace (netns=None), as issue 4's preflight tests use them."""
    require_tool("tinyproxy", "docker-registry", "skopeo", "openssl")
    ca = make_ca(tmp_path / "pki")
    cert = issue_cert(ca, tmp_path / "pki", ["localhost", "127.0.0.1"])
    with start_registry(
        "127.0.0.1", cert=cert.cert, key=cert.key, storage=tmp_path / "storage", server_name="localhost", ca=ca.cert
    ) as registry:
        image = build_oci_image(tmp_path / "oci")
        push_image(image, registry.reference("nodesim/hello", image.tag), ca.trust_dir)
        # Go never proxies loopback, so this pull is direct: it proves push + pull, not the proxy.
        pulled = pull_image(registry.reference("nodesim/hello", image.tag), tmp_path / "pulled", ca.trust_dir, env={})
        assert pulled.ok, pulled.stderr
        assert pulled.file_content("hello.txt") == image.payload

        with start_tinyproxy("127.0.0.1", allow=["127.0.0.1"], connect_ports=[registry.port]) as proxy:
            assert proxy.url == f"http://127.0.0.1:{proxy.port}"
            status, api_version = _registry_v2_via_proxy(proxy.port, registry.port, ca.cert)
            assert (status, api_version) == (200, "registry/2.0")
            assert f"localhost:{registry.port}" in proxy.log()  # the tunnel really went through tinyproxy

        with (
            start_tinyproxy("127.0.0.1", allow=["127.0.0.1"], connect_ports=[443]) as refusing,
            pytest.raises(OSError, match="403"),
        ):
            _registry_v2_via_proxy(refusing.port, registry.port, ca.cert)
        assert not refusing.running
