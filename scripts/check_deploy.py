#!/usr/bin/env python3
"""Offline checks of cxrelay's deployment files (the Dockerfile, deploy/k8s, deploy/grafana).

Run through `scripts/check-deploy`, which installs the tools first. Every check reads the files
of one tree (the repository, or a broken copy of it in --self-test) and returns its problems as
"file: problem" lines; nothing here talks to a cluster, a registry or a container engine.

    scripts/check-deploy               # every check; last line "check-deploy: N passed, M failed"
    scripts/check-deploy --self-test   # proves each check fails on a deliberately broken copy
    scripts/check-deploy --list        # the checks and what they do
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

# The Kubernetes version the rendered objects are validated against (kubernetes-validate's
# bundled schemas, strict: unknown fields are errors).
K8S_VERSION = "1.33.0"

BASE = "deploy/k8s/base"
OVERLAYS = "deploy/k8s/overlays"
RULE_FILE = "deploy/k8s/base/prometheusrule.yaml"
RULE_TEST = "deploy/k8s/tests/alerts.test.yaml"
SCHEMAS = "deploy/k8s/schemas"
DASHBOARD = "deploy/grafana/cxrelay-dashboard.json"
DEPLOY_README = "deploy/README.md"
METRIC_RS = "crates/cxrelay-core/src/metric.rs"
CONFIG_RS = "crates/cxrelay-core/src/config.rs"
CLI_SRC = "crates/cxrelay/src"
YAMLLINT_CONFIG = "deploy/k8s/.yamllint"

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.schema.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.schema.json",
}
SECRET_NAME = "cxrelay-secrets"
UID = 10001

# What the self-test copies: every file a check reads.
TREE = ["Dockerfile", ".dockerignore", "deploy", METRIC_RS, CONFIG_RS, CLI_SRC]


# --- helpers -------------------------------------------------------------------------------------


def run(cmd: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text()


def overlay_dirs(root: Path) -> list[str]:
    base = root / OVERLAYS
    if not base.is_dir():
        return []
    return sorted(f"{OVERLAYS}/{d.name}" for d in base.iterdir() if (d / "kustomization.yaml").is_file())


_renders: dict[tuple[str, str], tuple[list[dict] | None, str]] = {}


def render(root: Path, rel: str) -> tuple[list[dict] | None, str]:
    """`kubectl kustomize` of one kustomization (offline): (objects, error)."""
    key = (str(root), rel)
    if key not in _renders:
        p = run(["kubectl", "kustomize", rel], root)
        if p.returncode != 0:
            _renders[key] = (None, (p.stderr or p.stdout).strip())
        else:
            try:
                docs = [d for d in yaml.safe_load_all(p.stdout) if d]
                _renders[key] = (docs, "")
            except yaml.YAMLError as e:
                _renders[key] = (None, f"rendered output is not YAML: {e}")
    return _renders[key]


def renders(root: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """Every kustomization's objects, and a problem per kustomization that does not render."""
    out, problems = {}, []
    for rel in [BASE] + overlay_dirs(root):
        objs, err = render(root, rel)
        if objs is None:
            problems.append(f"{rel}: does not render: {err.splitlines()[-1] if err else 'no output'}")
        else:
            out[rel] = objs
    return out, problems


def find(objs: list[dict], kind: str, name_prefix: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind and o.get("metadata", {}).get("name", "").startswith(name_prefix)]


def rule_spec(root: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(read(root, RULE_FILE)) if d]
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        raise ValueError(f"{RULE_FILE}: expected one PrometheusRule, found {len(rules)}")
    return rules[0]["spec"]


def alerts(root: Path) -> list[dict]:
    return [r for g in rule_spec(root).get("groups", []) for r in g.get("rules", []) if "alert" in r]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def readme_anchors(root: Path) -> set[str]:
    text = read(root, DEPLOY_README)
    anchors = {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}
    anchors |= set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
    return anchors


# --- metric names (strictly from metric.rs) --------------------------------------------------------


def metric_catalogue(root: Path) -> dict[str, str]:
    """Every metric name metric.rs defines, with its kind (counter, gauge, histogram)."""
    text = read(root, METRIC_RS)
    consts = dict(re.findall(r'pub const ([A-Z0-9_]+): &str = "(cxrelay_[a-z0-9_]+)";', text))
    kinds = {}
    for const, kind in re.findall(r"\(\s*([A-Z0-9_]+)\s*,\s*Kind::(Counter|Gauge|Histogram)\s*,", text):
        if const in consts:
            kinds[consts[const]] = kind.lower()
    for name in consts.values():
        kinds.setdefault(name, "unknown")
    return kinds


def known_series(catalogue: dict[str, str]) -> set[str]:
    names = set()
    for name, kind in catalogue.items():
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


METRIC_RE = re.compile(r"\bcxrelay_[a-z0-9_]+\b")


def strip_strings(expr: str) -> str:
    """A PromQL expression without its quoted label values (where cxrelay_ may also appear)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and variable query."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p.get('id')} {p.get('title')!r}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", q)
            out.append((f"variable {v.get('name')}", m.group(1) if m else q))
    return out


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", "x", expr)


def scaledobject_queries(root: Path) -> list[tuple[str, str]]:
    out = []
    objs_by, _ = renders(root)
    for rel, objs in objs_by.items():
        for so in find(objs, "ScaledObject", ""):
            for i, t in enumerate(so.get("spec", {}).get("triggers", []) or []):
                q = (t.get("metadata") or {}).get("query")
                if isinstance(q, str):
                    out.append((f"{rel}: ScaledObject {so['metadata']['name']} trigger {i}", q))
    return out


# --- the checks ----------------------------------------------------------------------------------


def check_yamllint(root: Path) -> list[str]:
    p = run(["yamllint", "--strict", "-f", "parsable", "-c", YAMLLINT_CONFIG, "deploy"], root)
    problems = [line for line in p.stdout.splitlines() if line.strip()]
    if p.returncode != 0 and not problems:
        problems = [f"yamllint failed: {(p.stderr or p.stdout).strip()}"]
    return problems


def check_kustomize_base(root: Path) -> list[str]:
    objs, err = render(root, BASE)
    if objs is None:
        return [f"{BASE}: kubectl kustomize failed: {err}"]
    return [] if objs else [f"{BASE}: renders no objects"]


def check_kustomize_overlays(root: Path) -> list[str]:
    dirs = overlay_dirs(root)
    if not dirs:
        return [f"{OVERLAYS}: no overlay with a kustomization.yaml"]
    problems = []
    for rel in dirs:
        objs, err = render(root, rel)
        if objs is None:
            problems.append(f"{rel}: kubectl kustomize failed: {err}")
            continue
        text = read(root, f"{rel}/kustomization.yaml")
        if "../../base" not in text:
            problems.append(f"{rel}/kustomization.yaml: does not use ../../base")
        if not any(o.get("kind") == "Namespace" for o in objs) and "namespace:" not in text:
            problems.append(f"{rel}: sets no namespace")
        for o in objs:
            if o.get("kind") == "Secret" and (o.get("data") or o.get("stringData")):
                problems.append(f"{rel}: renders Secret {o['metadata'].get('name')} with values: secrets are not committed")
    return problems


def check_k8s_schemas(root: Path) -> list[str]:
    import kubernetes_validate

    objs_by, problems = renders(root)
    for rel, objs in objs_by.items():
        for o in objs:
            if (o.get("apiVersion"), o.get("kind")) in CRD_SCHEMAS:
                continue
            what = f"{rel}: {o.get('kind')} {o.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(o, K8S_VERSION, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{what}: no schema for {o.get('apiVersion')} {o.get('kind')} in Kubernetes {K8S_VERSION}")
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(x) for x in e.path) or "(top)"
                problems.append(f"{what}: {path}: {e.message}")
    return problems


def check_crd_schemas(root: Path) -> list[str]:
    import jsonschema

    validators = {}
    problems = []
    for key, fname in CRD_SCHEMAS.items():
        path = root / SCHEMAS / fname
        try:
            schema = json.loads(path.read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            validators[key] = jsonschema.Draft202012Validator(schema)
        except (OSError, ValueError, jsonschema.SchemaError) as e:
            problems.append(f"{SCHEMAS}/{fname}: unusable schema: {str(e).splitlines()[0]}")
    objs_by, render_problems = renders(root)
    problems += render_problems
    seen = set()
    for rel, objs in objs_by.items():
        for o in objs:
            key = (o.get("apiVersion"), o.get("kind"))
            if key not in CRD_SCHEMAS or key not in validators:
                continue
            seen.add(key)
            for e in sorted(validators[key].iter_errors(o), key=lambda e: list(e.path)):
                path = ".".join(str(x) for x in e.path) or "(top)"
                problems.append(f"{rel}: {o['kind']} {o.get('metadata', {}).get('name')}: {path}: {e.message}")
    for key in CRD_SCHEMAS:
        if key not in seen and key in validators:
            problems.append(f"{BASE}: renders no {key[1]} ({key[0]})")
    return problems


def extract_rules(root: Path, into: Path) -> Path:
    out = into / "cxrelay-rules.yaml"
    out.write_text(yaml.safe_dump(rule_spec(root), sort_keys=False))
    return out


def check_promtool_rules(root: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rules = extract_rules(root, Path(tmp))
        except (ValueError, KeyError, yaml.YAMLError) as e:
            return [f"{RULE_FILE}: {e}"]
        p = run(["promtool", "check", "rules", str(rules)], Path(tmp))
        if p.returncode != 0:
            return [f"{RULE_FILE} (spec): promtool check rules: {line.strip()}"
                    for line in (p.stderr + p.stdout).splitlines() if line.strip() and "Checking" not in line]
    return []


def check_promtool_tests(root: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            extract_rules(root, Path(tmp))
        except (ValueError, KeyError, yaml.YAMLError) as e:
            return [f"{RULE_FILE}: {e}"]
        shutil.copy(root / RULE_TEST, Path(tmp) / "alerts.test.yaml")
        p = run(["promtool", "test", "rules", "alerts.test.yaml"], Path(tmp))
        if p.returncode != 0:
            lines = [line.rstrip() for line in (p.stdout + p.stderr).splitlines() if line.strip()]
            return [f"{RULE_TEST}: promtool test rules failed:"] + ["    " + line for line in lines[:60]]
    return []


def check_alert_tests_cover(root: Path) -> list[str]:
    tests = yaml.safe_load(read(root, RULE_TEST)) or {}
    fires, quiet = set(), set()
    for t in tests.get("tests", []) or []:
        for a in t.get("alert_rule_test", []) or []:
            (fires if a.get("exp_alerts") else quiet).add(a.get("alertname"))
    problems = []
    names = [a["alert"] for a in alerts(root)]
    for name in names:
        if name not in fires:
            problems.append(f"{RULE_TEST}: no test case where {name} fires")
        if name not in quiet:
            problems.append(f"{RULE_TEST}: no test case where {name} does not fire")
    for name in sorted((fires | quiet) - set(names)):
        problems.append(f"{RULE_TEST}: tests an alert the PrometheusRule does not have: {name}")
    return problems


def check_alert_annotations(root: Path) -> list[str]:
    problems = []
    anchors = readme_anchors(root)
    for a in alerts(root):
        name = a["alert"]
        sev = (a.get("labels") or {}).get("severity")
        if sev not in ("critical", "warning", "info"):
            problems.append(f"{RULE_FILE}: {name}: severity label is {sev!r}, expected critical, warning or info")
        ann = a.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{RULE_FILE}: {name}: no {key} annotation")
        url = ann.get("runbook_url", "")
        m = re.search(r"/deploy/README\.md#([a-z0-9-]+)$", url)
        if not m:
            problems.append(f"{RULE_FILE}: {name}: runbook_url {url!r} does not point at an anchor of deploy/README.md")
        elif m.group(1) not in anchors:
            problems.append(f"{RULE_FILE}: {name}: runbook_url anchor #{m.group(1)} is not a heading of {DEPLOY_README}")
        elif m.group(1) != name.lower():
            problems.append(f"{RULE_FILE}: {name}: runbook_url anchor #{m.group(1)} is not the alert's own (#{name.lower()})")
    return problems


def check_hadolint(root: Path) -> list[str]:
    p = run(["hadolint", "--no-color", "Dockerfile"], root)
    if p.returncode != 0:
        return [line for line in (p.stdout + p.stderr).splitlines() if line.strip()] or ["Dockerfile: hadolint failed"]
    return []


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        parts = buf.strip().split(None, 1)
        out.append((start, parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        buf = ""
    return out


def check_dockerfile_rules(root: Path) -> list[str]:
    problems = []
    try:
        ins = dockerfile_instructions(read(root, "Dockerfile"))
    except OSError as e:
        return [f"Dockerfile: {e}"]
    stages = [(n, args) for n, i, args in ins if i == "FROM"]
    if len(stages) < 2:
        problems.append(f"Dockerfile: {len(stages)} stage(s): expected a multi-stage build (builder and runtime)")
    aliases = set()
    for n, args in stages:
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0] if words else ""
        if image.lower() in aliases:
            continue
        if len(words) >= 3 and words[1].lower() == "as":
            aliases.add(words[2].lower())
        if "$" in image:
            problems.append(f"Dockerfile:{n}: FROM {image}: the base image comes from a variable; pin it literally")
            continue
        name, _, digest = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if not tag and not digest:
            problems.append(f"Dockerfile:{n}: FROM {image}: untagged base image; pin a release tag")
        elif tag == "latest":
            problems.append(f"Dockerfile:{n}: FROM {image}: `latest` is not a pin; use a release tag")
    final_start = stages[-1][0] if stages else 0
    final = [(n, i, a) for n, i, a in ins if n >= final_start]
    users = [(n, a.strip()) for n, i, a in final if i == "USER"]
    if not users:
        problems.append("Dockerfile: the final stage sets no USER (it would run as root)")
    else:
        n, user = users[-1]
        m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
        if not m:
            problems.append(f"Dockerfile:{n}: USER {user}: use a numeric uid (Kubernetes runAsNonRoot can only verify a number)")
        elif int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
            problems.append(f"Dockerfile:{n}: USER {user}: root")
        elif int(m.group(1)) != UID:
            problems.append(f"Dockerfile:{n}: USER {user}: the manifests run as {UID}; keep them equal")
    for n, i, a in ins:
        if i == "ADD":
            problems.append(f"Dockerfile:{n}: ADD: use COPY (ADD fetches URLs and unpacks archives)")
        if i == "RUN" and re.search(r"\bapt-get\s+(-\S+\s+)*install\b", a):
            if "--no-install-recommends" not in a:
                problems.append(f"Dockerfile:{n}: apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in a:
                problems.append(f"Dockerfile:{n}: apt-get install without removing /var/lib/apt/lists in the same RUN")
        if i in ("ENV", "ARG") and re.search(r"(SECRET|TOKEN|PASSWORD|API_TOKENS)\w*\s*=", a, re.I):
            problems.append(f"Dockerfile:{n}: {i} {a.split('=')[0]}: no secrets in the image")
    if not any(i == "ENTRYPOINT" for _, i, _ in final):
        problems.append("Dockerfile: the final stage has no ENTRYPOINT")
    ignore = root / ".dockerignore"
    if not ignore.is_file():
        problems.append(".dockerignore: missing (target/ and .git would be sent as build context)")
    else:
        lines = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if "*" not in lines and not ({"target", "/target", "target/"} & set(lines) and {".git", "/.git"} & set(lines)):
            problems.append(".dockerignore: neither ignores everything by default (`*`) nor target/ and .git")
    return problems


def check_metric_names(root: Path) -> list[str]:
    try:
        catalogue = metric_catalogue(root)
    except OSError as e:
        return [f"{METRIC_RS}: {e}"]
    if not catalogue:
        return [f"{METRIC_RS}: no `pub const NAME: &str = \"cxrelay_…\"` metric names found"]
    known = known_series(catalogue)
    used: list[tuple[str, str]] = []
    for a in alerts(root):
        used += [(f"{RULE_FILE}: {a['alert']}", m) for m in METRIC_RE.findall(strip_strings(a["expr"]))]
    tests = yaml.safe_load(read(root, RULE_TEST)) or {}
    for t in tests.get("tests", []) or []:
        for s in t.get("input_series", []) or []:
            used += [(f"{RULE_TEST}: input series", m) for m in METRIC_RE.findall(strip_strings(s.get("series", "")))]
    for where, q in scaledobject_queries(root):
        used += [(where, m) for m in METRIC_RE.findall(strip_strings(q))]
    try:
        dash = json.loads(read(root, DASHBOARD))
    except (OSError, ValueError) as e:
        return [f"{DASHBOARD}: {e}"]
    for where, q in dashboard_exprs(dash):
        used += [(f"{DASHBOARD}: {where}", m) for m in METRIC_RE.findall(strip_strings(q))]
    problems = [f"{where}: {name} is not a metric of {METRIC_RS}" for where, name in used if name not in known]
    if not used:
        problems.append("no metric names found in the rules, the ScaledObject or the dashboard")
    return sorted(set(problems))


def check_promql_syntax(root: Path) -> list[str]:
    """Dashboard and ScaledObject queries parse (promtool check rules on them as recording rules)."""
    try:
        dash = json.loads(read(root, DASHBOARD))
    except (OSError, ValueError) as e:
        return [f"{DASHBOARD}: {e}"]
    exprs = [(f"{DASHBOARD}: {w}", grafana_to_promql(q)) for w, q in dashboard_exprs(dash)]
    exprs += scaledobject_queries(root)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (where, q) in enumerate(exprs):
            f = Path(tmp) / f"q{i}.yaml"
            f.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "q", "expr": q}]}]}))
            p = run(["promtool", "check", "rules", str(f)], Path(tmp))
            if p.returncode != 0:
                msg = [line.strip() for line in (p.stderr + p.stdout).splitlines() if "error" in line.lower() or "parse" in line.lower()]
                problems.append(f"{where}: not valid PromQL: {msg[-1] if msg else q}")
    return problems


def env_of(container: dict, configmaps: dict[str, dict]) -> dict[str, str]:
    env = {}
    for src in container.get("envFrom", []) or []:
        ref = (src.get("configMapRef") or {}).get("name")
        if ref in configmaps:
            env.update(configmaps[ref].get("data") or {})
    for e in container.get("env", []) or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
    return env


def pod_security_problems(where: str, pod: dict) -> list[str]:
    problems = []
    psc = pod.get("securityContext") or {}
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken is not false")
    for c in pod.get("containers", []) or []:
        csc = c.get("securityContext") or {}
        cw = f"{where}: container {c.get('name')}"

        def eff(key):
            return csc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            problems.append(f"{cw}: runAsNonRoot is not true")
        if eff("runAsUser") in (None, 0):
            problems.append(f"{cw}: runAsUser is {eff('runAsUser')!r}: set the image's non-root uid {UID}")
        elif eff("runAsUser") != UID:
            problems.append(f"{cw}: runAsUser {eff('runAsUser')} differs from the image's uid {UID}")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{cw}: capabilities do not drop ALL")
        if ((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")) != "RuntimeDefault":
            problems.append(f"{cw}: seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        for k in ("requests", "limits"):
            if not (res.get(k) or {}).get("memory") or (k == "requests" and not (res.get(k) or {}).get("cpu")):
                problems.append(f"{cw}: resources.{k} incomplete")
        if str(c.get("image", "")).endswith(":latest"):
            problems.append(f"{cw}: image {c['image']} uses :latest")
    return problems


def probe_port(c: dict, probe: dict) -> int | None:
    port = (probe.get("httpGet") or {}).get("port")
    if isinstance(port, int):
        return port
    for p in c.get("ports", []) or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def probes_problems(where: str, c: dict, port: int) -> list[str]:
    problems = []
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = c.get(kind)
        if not probe:
            problems.append(f"{where}: no {kind}")
            continue
        if (probe.get("httpGet") or {}).get("path") != path:
            problems.append(f"{where}: {kind} path is {(probe.get('httpGet') or {}).get('path')!r}, expected {path}")
        if probe_port(c, probe) != port:
            problems.append(f"{where}: {kind} port is not {port}")
    return problems


def check_worker_policy(root: Path) -> list[str]:
    objs_by, problems = renders(root)
    for rel, objs in objs_by.items():
        cms = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "ConfigMap"}
        deps = find(objs, "Deployment", "cxrelay-worker")
        if len(deps) != 1:
            problems.append(f"{rel}: expected one worker Deployment (cxrelay-worker), found {len(deps)}")
            continue
        d = deps[0]
        where = f"{rel}: Deployment {d['metadata']['name']}"
        spec = d.get("spec", {})
        if "replicas" in spec:
            problems.append(f"{where}: has a replicas field ({spec['replicas']}): KEDA owns the worker count")
        pod = spec.get("template", {}).get("spec", {})
        problems += pod_security_problems(where, pod)
        containers = pod.get("containers", []) or []
        if len(containers) != 1:
            problems.append(f"{where}: expected one container, found {len(containers)}")
            continue
        c = containers[0]
        args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        if "worker" not in args:
            problems.append(f"{where}: does not run `cxrelay worker` (args {args})")
        addr = args[args.index("--metrics-addr") + 1] if "--metrics-addr" in args[:-1] else env_of(c, cms).get("CXRELAY_METRICS_ADDR")
        if not addr or not addr.endswith(":9090"):
            problems.append(f"{where}: metrics address {addr!r}: expected --metrics-addr 0.0.0.0:9090")
        problems += probes_problems(where, c, 9090)
        env = env_of(c, cms)
        try:
            timeout_ms = int(env.get("CXRELAY_SHUTDOWN_TIMEOUT_MS", "30000"))
        except ValueError:
            problems.append(f"{where}: CXRELAY_SHUTDOWN_TIMEOUT_MS={env['CXRELAY_SHUTDOWN_TIMEOUT_MS']!r} is not a number")
            timeout_ms = 30000
        if "CXRELAY_SHUTDOWN_TIMEOUT_MS" not in env:
            problems.append(f"{where}: CXRELAY_SHUTDOWN_TIMEOUT_MS is not set explicitly")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not grace > timeout_ms / 1000:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is not above the shutdown timeout "
                            f"({timeout_ms} ms): the kubelet would SIGKILL in-flight items")
        if not pod.get("topologySpreadConstraints"):
            problems.append(f"{where}: no topologySpreadConstraints")
        sos = find(objs, "ScaledObject", "")
        targets = [s for s in sos if (s.get("spec", {}).get("scaleTargetRef") or {}).get("name") == d["metadata"]["name"]]
        if len(targets) != 1:
            problems.append(f"{where}: expected one ScaledObject scaling it, found {len(targets)}")
        for s in targets:
            sw = f"{rel}: ScaledObject {s['metadata']['name']}"
            ss = s["spec"]
            if ss.get("minReplicaCount", 0) > ss.get("maxReplicaCount", 100):
                problems.append(f"{sw}: minReplicaCount above maxReplicaCount")
            prom = [t for t in ss.get("triggers", []) if t.get("type") == "prometheus"]
            if not prom:
                problems.append(f"{sw}: no prometheus trigger")
            for t in prom:
                md = t.get("metadata") or {}
                if not re.fullmatch(r'\s*max\s*\(\s*cxrelay_workers_usable\s*\{[^}]*tenant="[^"]+"[^}]*\}\s*\)\s*', md.get("query", "")):
                    problems.append(f"{sw}: query {md.get('query')!r} is not max(cxrelay_workers_usable{{tenant=\"…\"}})")
                if md.get("threshold") != "1" or t.get("metricType") != "AverageValue":
                    problems.append(f"{sw}: threshold must be \"1\" with metricType AverageValue (replicas = usable workers)")
        pdbs = [p for p in find(objs, "PodDisruptionBudget", "")
                if all(pod_labels(d).get(k) == v for k, v in ((p["spec"].get("selector") or {}).get("matchLabels") or {}).items())
                and (p["spec"].get("selector") or {}).get("matchLabels")]
        if not pdbs:
            problems.append(f"{where}: no PodDisruptionBudget selects its pods")
    return problems


def pod_labels(d: dict) -> dict:
    return d.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def check_serve_policy(root: Path) -> list[str]:
    objs_by, problems = renders(root)
    for rel, objs in objs_by.items():
        deps = find(objs, "Deployment", "cxrelay-serve")
        if len(deps) != 1:
            problems.append(f"{rel}: expected one serve Deployment (cxrelay-serve), found {len(deps)}")
            continue
        d = deps[0]
        where = f"{rel}: Deployment {d['metadata']['name']}"
        if d["spec"].get("replicas", 1) < 2:
            problems.append(f"{where}: replicas {d['spec'].get('replicas', 1)}: run at least 2")
        pod = d["spec"]["template"]["spec"]
        problems += pod_security_problems(where, pod)
        c = (pod.get("containers") or [{}])[0]
        args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        if "serve" not in args:
            problems.append(f"{where}: does not run `cxrelay serve` (args {args})")
        problems += probes_problems(where, c, 8080)
        labels = pod_labels(d)
        svcs = [s for s in find(objs, "Service", "")
                if s["spec"].get("selector") and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())]
        if not any(p.get("port") == 8080 and p.get("name") == "http" for s in svcs for p in s["spec"].get("ports", [])):
            problems.append(f"{where}: no Service with port http 8080 selects its pods")
        pdbs = [p for p in find(objs, "PodDisruptionBudget", "")
                if (p["spec"].get("selector") or {}).get("matchLabels")
                and all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        if not pdbs:
            problems.append(f"{where}: no PodDisruptionBudget selects its pods")
        mons = find(objs, "ServiceMonitor", "")
        if not any(all((s["metadata"].get("labels") or {}).get(k) == v
                       for k, v in (m["spec"].get("selector", {}).get("matchLabels") or {}).items())
                   for m in mons for s in svcs):
            problems.append(f"{where}: no ServiceMonitor selects its Service")
    return problems


def known_env_names(root: Path) -> set[str]:
    text = read(root, CONFIG_RS)
    names = set(re.findall(r'EnvVar::(?:text|typed)\(\s*"([A-Z0-9_]+)"', text))
    m = re.search(r"WEBHOOK_ENV:\s*\[&str;\s*\d+\]\s*=\s*\[([^\]]*)\]", text)
    if m:
        names |= set(re.findall(r'"([A-Z0-9_]+)"', m.group(1)))
    for f in (root / CLI_SRC).rglob("*.rs"):
        names |= set(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', f.read_text()))
    return names | {"RUST_LOG", "NO_COLOR"}


def check_env_names(root: Path) -> list[str]:
    known = known_env_names(root)
    if len(known) < 20:
        return [f"{CONFIG_RS}: could not read the EnvVar table ({len(known)} names)"]
    objs_by, problems = renders(root)
    for rel, objs in objs_by.items():
        for o in objs:
            where = f"{rel}: {o.get('kind')} {o.get('metadata', {}).get('name')}"
            if o.get("kind") == "ConfigMap" and o["metadata"]["name"].startswith("cxrelay-config"):
                for k in o.get("data") or {}:
                    if k not in known:
                        problems.append(f"{where}: {k} is not a cxrelay environment variable (config.rs)")
            if o.get("kind") != "Deployment":
                continue
            for c in o["spec"]["template"]["spec"].get("containers", []):
                for e in c.get("env", []) or []:
                    if e["name"] not in known:
                        problems.append(f"{where}: env {e['name']} is not a cxrelay environment variable (config.rs)")
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        if ref.get("name") != SECRET_NAME:
                            problems.append(f"{where}: env {e['name']} reads Secret {ref.get('name')!r}, expected {SECRET_NAME}")
                        if ref.get("key") != e["name"]:
                            problems.append(f"{where}: env {e['name']} reads key {ref.get('key')!r}: name Secret keys after the variable")
                for src in c.get("envFrom", []) or []:
                    if "secretRef" in src and src["secretRef"].get("name") != SECRET_NAME:
                        problems.append(f"{where}: envFrom Secret {src['secretRef'].get('name')!r}, expected {SECRET_NAME}")
    return problems


def check_tenant_consistency(root: Path) -> list[str]:
    objs_by, problems = renders(root)
    for rel, objs in objs_by.items():
        cms = [o for o in objs if o.get("kind") == "ConfigMap" and o["metadata"]["name"].startswith("cxrelay-config")]
        tenant = ((cms[0].get("data") or {}).get("CXRELAY_TENANT") if cms else None) or "default"
        for d in find(objs, "Deployment", "cxrelay-"):
            got = pod_labels(d).get("cxrelay.io/tenant")
            if got != tenant:
                problems.append(f"{rel}: Deployment {d['metadata']['name']}: pod label cxrelay.io/tenant={got!r}, "
                                f"but CXRELAY_TENANT={tenant!r}")
        for where, q in scaledobject_queries(root):
            if not where.startswith(rel + ":"):
                continue
            m = re.search(r'tenant="([^"]*)"', q)
            if not m or m.group(1) != tenant:
                problems.append(f"{where}: query {q!r} does not select tenant {tenant!r} (CXRELAY_TENANT)")
    return problems


def check_dashboard(root: Path) -> list[str]:
    try:
        dash = json.loads(read(root, DASHBOARD))
    except (OSError, ValueError) as e:
        return [f"{DASHBOARD}: not valid JSON: {e}"]
    problems = []
    if not dash.get("uid") or not dash.get("title"):
        problems.append(f"{DASHBOARD}: no uid or title")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if "tenant" not in variables:
        problems.append(f"{DASHBOARD}: no `tenant` variable")
    ids = []
    panels = dash.get("panels", [])
    for p in panels:
        ids.append(p.get("id"))
        if "gridPos" not in p:
            problems.append(f"{DASHBOARD}: panel {p.get('id')} {p.get('title')!r} has no gridPos")
        if p.get("type") == "row":
            continue
        exprs = [t.get("expr") for t in p.get("targets", []) if t.get("expr")]
        if not exprs:
            problems.append(f"{DASHBOARD}: panel {p.get('id')} {p.get('title')!r} has no query")
        for e in exprs:
            if "cxrelay_" in e and "$tenant" not in e:
                problems.append(f"{DASHBOARD}: panel {p.get('id')} {p.get('title')!r}: a query ignores $tenant: {e}")
    dup = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if dup:
        problems.append(f"{DASHBOARD}: duplicate panel ids {dup}")
    titles = " ".join(p.get("title", "") for p in panels).lower()
    for want in ("goodput", "failures", "pending", "usable", "429", "rate budget", "latency", "breaker", "webhook", "export"):
        if want not in titles:
            problems.append(f"{DASHBOARD}: no panel about {want!r}")
    return problems


@dataclass
class Check:
    name: str
    what: str
    fn: Callable[[Path], list[str]]


CHECKS = [
    Check("yamllint", "yamllint --strict (deploy/k8s/.yamllint) on every YAML file under deploy/", check_yamllint),
    Check("kustomize-base", "`kubectl kustomize deploy/k8s/base` renders (offline)", check_kustomize_base),
    Check("kustomize-overlays", "every overlay renders, uses ../../base, sets a namespace, commits no Secret values", check_kustomize_overlays),
    Check("k8s-schemas", f"kubernetes-validate --strict, Kubernetes {K8S_VERSION}, on every rendered built-in object", check_k8s_schemas),
    Check("crd-schemas", "ScaledObject, ServiceMonitor, PrometheusRule against deploy/k8s/schemas/*.json (jsonschema)", check_crd_schemas),
    Check("promtool-check-rules", "promtool check rules on the PrometheusRule's spec", check_promtool_rules),
    Check("promtool-test-rules", "promtool test rules deploy/k8s/tests/alerts.test.yaml against that spec", check_promtool_tests),
    Check("alert-tests-cover", "every alert has a test where it fires and one where it does not", check_alert_tests_cover),
    Check("alert-annotations", "severity, summary, description; runbook_url is the alert's anchor in deploy/README.md", check_alert_annotations),
    Check("hadolint", "hadolint Dockerfile", check_hadolint),
    Check("dockerfile-rules", "multi-stage, every FROM pinned, final USER numeric non-root, no ADD, apt hygiene, .dockerignore", check_dockerfile_rules),
    Check("metric-names", "every cxrelay_* name in rules, tests, ScaledObject and dashboard is in metric.rs", check_metric_names),
    Check("promql-syntax", "dashboard and ScaledObject queries are valid PromQL (promtool)", check_promql_syntax),
    Check("worker-policy", "worker Deployment: non-root, read-only root, probes, grace > shutdown timeout, no replicas, KEDA, PDB", check_worker_policy),
    Check("serve-policy", "serve Deployment: 2+ replicas, non-root, probes, Service http 8080, PDB, ServiceMonitor", check_serve_policy),
    Check("env-names", "every env var and ConfigMap key is a cxrelay variable (config.rs); secrets from cxrelay-secrets", check_env_names),
    Check("tenant-consistency", "CXRELAY_TENANT = pods' cxrelay.io/tenant label = the ScaledObject query's tenant", check_tenant_consistency),
    Check("dashboard", "Grafana JSON: uid, tenant variable, unique ids, every panel has tenant-filtered queries", check_dashboard),
]


def run_check(check: Check, root: Path) -> list[str]:
    try:
        return check.fn(root)
    except Exception as e:  # a check that crashes on a broken file has found a problem
        return [f"{check.name}: could not check: {type(e).__name__}: {e}"]


def each_check(root: Path):
    """Runs every check on the tree at `root`: yields (check, problems, seconds taken)."""
    for check in CHECKS:
        t = time.monotonic()
        problems = run_check(check, root)
        yield check, problems, time.monotonic() - t


def print_outcome(problems: list[str], ok_line: str, fail_line: str) -> bool:
    """Prints one check's outcome, its problems indented under a failure; True when it passed."""
    if not problems:
        print(ok_line)
        return True
    print(fail_line)
    for p in problems:
        print(f"     {p}")
    return False


def run_all(root: Path) -> int:
    passed = failed = 0
    t0 = time.monotonic()
    for check, problems, dt in each_check(root):
        if print_outcome(problems, f"ok   {check.name} ({dt:.1f}s)", f"FAIL {check.name} ({dt:.1f}s): {check.what}"):
            passed += 1
        else:
            failed += 1
    catalogue = metric_catalogue(root)
    print(f"(metric names read from {METRIC_RS}: {len(catalogue)}; Kubernetes schemas {K8S_VERSION}; "
          f"{time.monotonic() - t0:.1f}s)")
    print(f"check-deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


# --- self-test: every check must fail on a broken copy ---------------------------------------------


def edit(rel: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        text = p.read_text()
        if old not in text:
            raise AssertionError(f"self-test mutation: {old!r} not found in {rel}")
        p.write_text(text.replace(old, new, count))
    return apply


def append(rel: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        with open(root / rel, "a") as f:
            f.write(text)
    return apply


def dashboard_edit(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / DASHBOARD
        d = json.loads(p.read_text())
        fn(d)
        p.write_text(json.dumps(d, indent=2) + "\n")
    return apply


def _dup_panel(d: dict) -> None:
    d["panels"].append(copy.deepcopy(d["panels"][2]))


def _drop_tenant_var(d: dict) -> None:
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "tenant"]


def _bad_dash_expr(d: dict) -> None:
    d["panels"][1]["targets"][0]["expr"] = d["panels"][1]["targets"][0]["expr"].replace("sum(rate(", "sum(rate((", 1)


def _bad_dash_metric(d: dict) -> None:
    d["panels"][3]["targets"][0]["expr"] = d["panels"][3]["targets"][0]["expr"].replace("cxrelay_items_pending", "cxrelay_items_pendng")


W = f"{BASE}/worker-deployment.yaml"
S = f"{BASE}/serve-deployment.yaml"
SO = f"{BASE}/worker-scaledobject.yaml"
OV = f"{OVERLAYS}/example"

MUTATIONS: list[tuple[str, str, Callable[[Path], None]]] = [
    ("yamllint", "trailing spaces in a manifest", edit(f"{BASE}/serve-service.yaml", "type: ClusterIP", "type: ClusterIP   ")),
    ("yamllint", "a duplicated key", edit(f"{BASE}/serve-pdb.yaml", "  minAvailable: 1\n", "  minAvailable: 1\n  minAvailable: 2\n")),
    ("kustomize-base", "the base lists a file that does not exist", edit(f"{BASE}/kustomization.yaml", "  - serve-pdb.yaml\n", "  - serve-pdb.yaml\n  - missing.yaml\n")),
    ("kustomize-overlays", "the overlay patches with a file that does not exist", edit(f"{OV}/kustomization.yaml", "path: replica-limits.yaml", "path: replica-limit.yaml")),
    ("kustomize-overlays", "the overlay commits a Secret with values",
     append(f"{OV}/namespace.yaml", "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cxrelay-secrets\nstringData:\n  REDIS_URL: redis://x\n")),
    ("k8s-schemas", "replicas is a string", edit(S, "replicas: 2", 'replicas: "two"')),
    ("k8s-schemas", "an unknown container field (strict)", edit(W, "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          restartPolicyy: Always\n")),
    ("crd-schemas", "a KEDA threshold given as a number", edit(SO, 'threshold: "1"', "threshold: 1")),
    ("crd-schemas", "a ServiceMonitor without endpoints", edit(f"{BASE}/serve-servicemonitor.yaml", "  endpoints:\n", "  endpointz:\n")),
    ("crd-schemas", "an alert without a severity", edit(RULE_FILE, "            severity: warning\n", "            team: ops\n")),
    ("promtool-check-rules", "an alert expression that does not parse", edit(RULE_FILE, "(cxrelay_breaker_open) == 1", "(cxrelay_breaker_open) == == 1")),
    ("promtool-test-rules", "the failure-rate threshold raised to 50%", edit(RULE_FILE, ") > 0.05", ") > 0.5")),
    ("promtool-test-rules", "the breaker alert waits 10m instead of 2m", edit(RULE_FILE, "for: 2m", "for: 10m")),
    ("alert-tests-cover", "an alert nobody tests",
     edit(RULE_FILE, "        - alert: CxrelayBreakerOpen\n",
          "        - alert: CxrelayUntested\n          expr: max(cxrelay_items_pending) > 1e9\n          labels:\n            severity: info\n"
          "          annotations:\n            summary: s\n            description: d\n"
          "            runbook_url: https://git.example.com/cxrelay/blob/main/deploy/README.md#cxrelayuntested\n"
          "        - alert: CxrelayBreakerOpen\n")),
    ("alert-annotations", "a runbook_url anchor missing from deploy/README.md", edit(RULE_FILE, "#cxrelaybreakeropen", "#cxrelay-breaker-gone")),
    ("alert-annotations", "the runbook section renamed in deploy/README.md", edit(DEPLOY_README, "### CxrelayExportOverdue", "### Export overdue")),
    ("hadolint", "apt-get install without cleanup or --no-install-recommends",
     edit("Dockerfile", "WORKDIR /src\n", "WORKDIR /src\nRUN apt-get update && apt-get install -y pkg-config\n")),
    ("dockerfile-rules", "the final stage runs as root", edit("Dockerfile", "USER 10001:10001", "USER root")),
    ("dockerfile-rules", "a base image on :latest", edit("Dockerfile", "FROM debian:12.11-slim", "FROM debian:latest")),
    ("dockerfile-rules", "an untagged base image", edit("Dockerfile", "FROM rust:1.95.0-slim-bookworm AS builder", "FROM rust AS builder")),
    ("dockerfile-rules", "ADD instead of COPY", edit("Dockerfile", "COPY crates ./crates", "ADD crates ./crates")),
    ("dockerfile-rules", "a single stage", edit("Dockerfile", "FROM rust:1.95.0-slim-bookworm AS builder", "# (no builder)")),
    ("metric-names", "a misspelt metric in an alert", edit(RULE_FILE, "(cxrelay_breaker_open)", "(cxrelay_breaker_opened)")),
    ("metric-names", "a misspelt metric in the dashboard", dashboard_edit(_bad_dash_metric)),
    ("metric-names", "metric.rs without cxrelay_workers_usable (names are read from metric.rs only)",
     edit(METRIC_RS, 'pub const WORKERS_USABLE: &str = "cxrelay_workers_usable";', "")),
    ("promql-syntax", "a dashboard query that does not parse", dashboard_edit(_bad_dash_expr)),
    ("worker-policy", "the worker's root filesystem writable", edit(W, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")),
    ("worker-policy", "grace period shorter than the shutdown timeout", edit(W, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 20")),
    ("worker-policy", "a replicas field on the worker", edit(W, "  revisionHistoryLimit: 5\n", "  replicas: 3\n  revisionHistoryLimit: 5\n")),
    ("worker-policy", "no readiness probe on the worker", edit(W, "          readinessProbe:\n            httpGet:\n              path: /readyz\n",
                                                                  "          startupProbe:\n            httpGet:\n              path: /readyz\n")),
    ("worker-policy", "the worker may run as root", edit(W, "runAsNonRoot: true", "runAsNonRoot: false", 2)),
    ("worker-policy", "the ScaledObject sums instead of max", edit(SO, "query: max(cxrelay_workers_usable", "query: sum(cxrelay_workers_usable")),
    ("serve-policy", "serve's readiness probe on the wrong path", edit(S, "path: /readyz", "path: /ready")),
    ("serve-policy", "serve with one replica", edit(S, "replicas: 2", "replicas: 1")),
    ("env-names", "a ConfigMap key that is not a cxrelay variable (CXRELAY_REDIS_URL)", append(f"{BASE}/config.env", "CXRELAY_REDIS_URL=redis://redis:6379\n")),
    ("env-names", "a secret from another Secret", edit(W, "name: cxrelay-secrets\n                  key: REDIS_URL", "name: redis\n                  key: REDIS_URL")),
    ("tenant-consistency", "the ScaledObject asks for another tenant than CXRELAY_TENANT", edit(SO, 'tenant="default"', 'tenant="acme"')),
    ("tenant-consistency", "the overlay no longer copies its tenant into the pods' label",
     edit(f"{OV}/kustomization.yaml", "          kind: Deployment\n", "          kind: Deployment\n          name: cxrelay-nothing\n")),
    ("dashboard", "a duplicated panel id", dashboard_edit(_dup_panel)),
    ("dashboard", "no tenant variable", dashboard_edit(_drop_tenant_var)),
]


def copy_tree(src: Path, dst: Path) -> None:
    for rel in TREE:
        s, d = src / rel, dst / rel
        if s.is_dir():
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("target", "__pycache__"))
        elif s.is_file():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def self_test(root: Path) -> int:
    passed = failed = 0
    names = {c.name: c for c in CHECKS}
    untested = set(names) - {m[0] for m in MUTATIONS}
    with tempfile.TemporaryDirectory(prefix="check-deploy-self-test-") as tmp:
        clean = Path(tmp) / "clean"
        copy_tree(root, clean)
        # The unbroken copy passes every check: each failure below is the mutation's doing.
        for check, problems, _ in each_check(clean):
            if print_outcome(problems, f"ok   {check.name} passes on the unbroken copy", f"FAIL {check.name} fails on the unbroken copy:"):
                passed += 1
            else:
                failed += 1
        for i, (name, what, mutate) in enumerate(MUTATIONS):
            broken = Path(tmp) / f"m{i}"
            copy_tree(root, broken)
            try:
                mutate(broken)
            except AssertionError as e:
                failed += 1
                print(f"FAIL {name}: cannot break the copy: {e}")
                continue
            problems = run_check(names[name], broken)
            if problems:
                passed += 1
                print(f"ok   {name} fails on {what}: {' '.join(problems[0].split())[:150]}")
            else:
                failed += 1
                print(f"FAIL {name} passes on {what}")
            shutil.rmtree(broken, ignore_errors=True)
    for name in sorted(untested):
        failed += 1
        print(f"FAIL {name}: no self-test mutation")
    print(f"self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    if "--list" in argv:
        for c in CHECKS:
            print(f"{c.name:22} {c.what}")
        return 0
    unknown = [a for a in argv if a not in ("--self-test", "--list")]
    if unknown:
        print(f"usage: scripts/check-deploy [--self-test | --list] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if "--self-test" in argv:
        return self_test(root)
    return run_all(root)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
