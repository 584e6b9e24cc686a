"""cluster.yaml: valid for the installed Ray's autoscaler, GPU workers, token auth, nothing public but SSH."""
from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _start_command(commands: list[str]) -> str:
    """The one command that runs `ray start` (the others are e.g. `ray stop`)."""
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 1, commands
    return starts[0]


def _ingress_rules(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["provider"].get("security_group", {}).get("IpPermissions", [])


def test_valid_against_the_schema_shipped_in_the_ray_wheel(config: dict[str, Any]) -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)


def test_ray_up_config_checks_pass(config: dict[str, Any]) -> None:
    # What `ray up` runs before touching AWS: defaults merged in, then Ray's own validation.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_gpu_worker_type(config: dict[str, Any]) -> None:
    types = config["available_node_types"]
    gpu = {name: t for name, t in types.items() if t.get("resources", {}).get("GPU", 0) >= 1}
    assert gpu, "no worker type with a GPU"
    for name, t in gpu.items():
        assert name != config["head_node_type"]
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
        assert t["node_config"]["InstanceType"].split(".")[0] in {"g5", "g6"}
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] > 0


def test_docker_image_matches_installed_ray_and_python(config: dict[str, Any]) -> None:
    image = config["docker"]["image"]
    assert re.fullmatch(rf"rayproject/ray(-ml)?:{re.escape(ray.__version__)}-py311-gpu", image), image
    assert config["docker"]["container_name"]


def test_setup_installs_the_project_with_torch_pinned_as_in_pyproject(config: dict[str, Any]) -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_spec = next(d for d in deps if re.match(r"torch\b", d))
    setup = "\n".join(config["setup_commands"])
    assert f'"{torch_spec}"' in setup
    assert "pip install" in setup and "~/reid-ray" in setup
    assert config["file_mounts"]["~/reid-ray"] == "."


def test_dashboard_listens_on_loopback_only(config: dict[str, Any]) -> None:
    head_start = _start_command(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    everything = json.dumps(config)
    assert "0.0.0.0" not in everything.replace('"0.0.0.0/0"', "")  # no bind-all anywhere


@pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_token_auth_in_start_commands(config: dict[str, Any], key: str) -> None:
    start = _start_command(config[key])
    assert re.search(r"\bRAY_AUTH_MODE=token\b", start), start
    # Same token file on every node: RAY_AUTH_TOKEN_PATH names a file that file_mounts copies to each node.
    path = re.search(r"RAY_AUTH_TOKEN_PATH=(\S+)", start).group(1).replace("$HOME/", "~/")
    assert path in config["file_mounts"]


def test_no_ingress_but_ssh_from_a_restricted_cidr(config: dict[str, Any]) -> None:
    rules = _ingress_rules(config)
    assert rules, "define the SSH rule explicitly (see the comments in cluster.yaml)"
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22), rule
        cidrs = [r["CidrIp"] for r in rule.get("IpRanges", [])] + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        assert cidrs and not OPEN_CIDRS & set(cidrs), rule


# --- Ray's AWS bootstrap against a mocked EC2: is the security group what the comments say? ---


@pytest.fixture
def mocked_ec2() -> Iterator[tuple[Any, str, str]]:
    """(ec2 client, vpc id, subnet id) on moto; Ray's cached boto3 resources are dropped around it."""
    moto = pytest.importorskip("moto")
    import boto3
    from ray.autoscaler._private.aws import utils as aws_utils

    def clear() -> None:
        aws_utils.resource_cache.cache_clear()
        aws_utils.client_cache.cache_clear()

    clear()
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-west-2a")
        yield ec2, vpc, subnet["Subnet"]["SubnetId"]
    clear()


def _bootstrap_security_group(config: dict[str, Any], ec2: Any, subnet: str) -> list[dict[str, Any]]:
    """Run Ray's own security-group step of `ray up`; return the ingress rules the nodes end up with."""
    from ray.autoscaler._private.aws.config import _configure_security_group
    from ray.autoscaler._private.util import prepare_config

    cfg = prepare_config(copy.deepcopy(config))
    for node_type in cfg["available_node_types"].values():
        node_type["node_config"]["SubnetIds"] = [subnet]  # normally chosen by an earlier bootstrap step
    cfg = _configure_security_group(cfg)
    group_ids = {g for t in cfg["available_node_types"].values() for g in t["node_config"]["SecurityGroupIds"]}
    groups = ec2.describe_security_groups(GroupIds=sorted(group_ids))["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == [config["provider"]["security_group"]["GroupName"]]
    return groups[0]["IpPermissions"]


def _public_cidrs(rules: list[dict[str, Any]]) -> set[str]:
    return {r["CidrIp"] for rule in rules for r in rule["IpRanges"]} & OPEN_CIDRS


def test_precreated_security_group_is_left_as_is(config: dict[str, Any], mocked_ec2) -> None:
    ec2, vpc, subnet = mocked_ec2
    # The recipe from cluster.yaml's header: the yaml's SSH rule plus node <-> node traffic.
    sg = ec2.create_security_group(GroupName="reid-ray-sg", Description="reid-ray", VpcId=vpc)["GroupId"]
    rules = copy.deepcopy(_ingress_rules(config)) + [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=rules)

    got = _bootstrap_security_group(config, ec2, subnet)
    assert _public_cidrs(got) == set()
    assert {(r["IpProtocol"], r.get("FromPort")) for r in got} == {("tcp", 22), ("-1", None)}


def test_autoscaler_created_group_would_open_ssh_to_the_world(config: dict[str, Any], mocked_ec2) -> None:
    # Why cluster.yaml asks for a pre-created group. If this starts failing, Ray stopped adding
    # SSH-from-anywhere and the pre-creation step in cluster.yaml's header can be dropped.
    ec2, _, subnet = mocked_ec2
    assert _public_cidrs(_bootstrap_security_group(config, ec2, subnet)) == {"0.0.0.0/0"}
