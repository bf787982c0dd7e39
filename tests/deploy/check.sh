#!/usr/bin/env bash
# check.sh: validate the deployment files without a Docker engine.
#   - every YAML file under deploy/ parses (PyYAML), every JSON file too;
#   - every file they reference exists (Dockerfile COPY sources and the
#     .dockerignore, compose build context and Dockerfile, stack configs;
#     stack secrets must be files that deploy/swarm/make-secrets.sh writes),
#     systemd units name an env example;
#   - every canopy invocation (compose/stack commands and health checks, the
#     systemd ExecStart lines, the Dockerfile CMD, the README's Deployment
#     section) uses only a command and flags that `canopy CMD --help` lists,
#     and cluster.json only keys those commands accept; the image's entry
#     point runs `canopy X` for both `X` and `canopy X`;
#   - the stack places services by the role labels and uses endpoint_mode
#     dnsrr on every one (no IPVS needed);
#   - each node's --advertise port equals its --listen port, the ports are
#     ones the image EXPOSEs, and cluster.json points at the scheduler's port;
#   - the shell scripts in deploy/ (and the one inside cloud-init.yaml) and
#     tests/deploy/docker.sh pass the shellcheck linter when it is installed.
#   tests/deploy/check.sh [CANOPY]   (default build-sim/cli/canopy)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
canopy=${1:-$root/build-sim/cli/canopy}
[ -x "$canopy" ] || { echo "check: no canopy executable at $canopy" >&2; exit 1; }
canopy=$(cd "$(dirname "$canopy")" && pwd)/$(basename "$canopy")
python3 -c "import yaml" 2>/dev/null || { echo "check: python3-yaml is missing (deploy/install-deps.sh)" >&2; exit 1; }

python3 - "$root" "$canopy" <<'PY'
import glob, json, os, re, shlex, subprocess, sys
import yaml

root, canopy = sys.argv[1], sys.argv[2]
dep = os.path.join(root, "deploy")
errors, checked = [], {"yaml": 0, "json": 0, "refs": 0, "invocations": 0, "flags": 0}

def err(msg):
    errors.append(msg)

def rel(p):
    return os.path.relpath(p, root)

# --- parse ---
docs = {}
for path in sorted(glob.glob(f"{dep}/**/*.yaml", recursive=True) + glob.glob(f"{dep}/**/*.yml", recursive=True)):
    try:
        with open(path) as f:
            docs[path] = yaml.safe_load(f)
        checked["yaml"] += 1
    except yaml.YAMLError as e:
        err(f"{rel(path)}: YAML does not parse: {e}")
for path in sorted(glob.glob(f"{dep}/**/*.json", recursive=True)):
    try:
        with open(path) as f:
            json.load(f)
        checked["json"] += 1
    except ValueError as e:
        err(f"{rel(path)}: JSON does not parse: {e}")

def exists(path, where):
    checked["refs"] += 1
    if not os.path.exists(path):
        err(f"{where}: references {rel(path)}, which does not exist")

# --- canopy's own options, from --help ---
help_cache = {}
def options(cmd):
    if cmd not in help_cache:
        r = subprocess.run([canopy, cmd, "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            help_cache[cmd] = None
        else:
            opts = set()
            for m in re.finditer(r"--(\[no-\])?([a-z][a-z0-9-]*)", r.stdout):
                opts.add(m.group(2))
                if m.group(1):
                    opts.add("no-" + m.group(2))
            help_cache[cmd] = opts
    return help_cache[cmd]

ignored_cache = {}
def ignored_keys(cmd):
    """Config keys `canopy CMD --help` says it ignores (a shared cluster file)."""
    if cmd not in ignored_cache:
        r = subprocess.run([canopy, cmd, "--help"], capture_output=True, text=True)
        keys, inside = set(), False
        for line in r.stdout.splitlines():
            if line.startswith("Config keys this command ignores"):
                inside = True
            elif inside and line.startswith("  "):
                keys.add(line.split()[0])
            else:
                inside = False
        ignored_cache[cmd] = keys
    return ignored_cache[cmd]

def check_invocation(argv, where):
    """argv starts with the canopy subcommand."""
    checked["invocations"] += 1
    if not argv:
        err(f"{where}: empty canopy command")
        return None
    cmd = argv[0]
    if cmd in ("help", "version"):
        return cmd
    opts = options(cmd)
    if opts is None:
        err(f"{where}: `canopy {cmd}` is not a canopy command")
        return None
    for a in argv[1:]:
        if a.startswith("--"):
            name = a[2:].split("=", 1)[0]
            checked["flags"] += 1
            if name not in opts:
                err(f"{where}: `canopy {cmd}` has no option --{name}")
    return cmd

def shell_invocations(text, where):
    """canopy invocations inside a shell command line."""
    for part in re.split(r"[|;&\n]+|\$\(|\)", text):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            words = part.split()
        for i, w in enumerate(words):
            if i > 0 and words[i - 1] in ("-p", "--project-name"):
                continue  # a compose project named canopy
            if os.path.basename(w) == "canopy" and i + 1 < len(words):
                check_invocation(words[i + 1:], where)
                break

def url_port(u):
    m = re.search(r":(\d+)$", u or "")
    return int(m.group(1)) if m else None

def flag_value(argv, name):
    for i, a in enumerate(argv):
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None

# --- Dockerfile ---
dockerfile = f"{dep}/Dockerfile"
exposed = set()
with open(dockerfile) as f:
    text = re.sub(r"\\\n", " ", f.read())
for line in text.splitlines():
    s = line.strip()
    if s.startswith("COPY ") and "--from=" not in s:
        parts = shlex.split(s)[1:]
        for src in parts[:-1]:
            if src != ".":
                exists(os.path.join(root, src), "deploy/Dockerfile COPY")
    elif s.startswith("EXPOSE "):
        exposed |= {int(p.split("/")[0]) for p in s.split()[1:]}
    elif s.startswith("CMD "):
        check_invocation(json.loads(s[4:]), "deploy/Dockerfile CMD")
    elif s.startswith("HEALTHCHECK ") and "canopy" in s:
        shell_invocations(s, "deploy/Dockerfile HEALTHCHECK")
    if s.startswith("ENTRYPOINT ") and json.loads(s[11:]) != ["docker-entrypoint.sh"]:
        err("deploy/Dockerfile: ENTRYPOINT is not docker-entrypoint.sh; the command lists assume it")
exists(os.path.join(root, ".dockerignore"), "deploy/Dockerfile")
# The entry point runs `canopy X` for both `X` and `canopy X`.
ep = os.path.join(dep, "docker-entrypoint.sh")
for argv in (["version"], ["canopy", "version"]):
    checked["invocations"] += 1
    r = subprocess.run(["sh", ep] + argv, capture_output=True, text=True,
                       env=dict(os.environ, PATH=os.path.dirname(canopy) + ":" + os.environ.get("PATH", "")))
    if r.returncode != 0 or not r.stdout.startswith("canopy "):
        first = (r.stderr.strip().splitlines() or [""])[0]
        err(f"deploy/docker-entrypoint.sh {' '.join(argv)}: exit {r.returncode}, {first!r}")

# --- compose and stack ---
def check_services(path, doc):
    where = rel(path)
    base = os.path.dirname(path)
    cluster_cfg = {}
    for name, c in (doc.get("configs") or {}).items():
        if "file" in c:
            exists(os.path.join(base, c["file"]), f"{where} configs.{name}")
            with open(os.path.join(base, c["file"])) as f:
                cluster_cfg = json.load(f)
    with open(f"{dep}/swarm/make-secrets.sh") as f:
        ms = f.read()
    # One certificate and key per node of the script's default list.
    m = re.search(r"nodes=\(([^)]*)\)\n", ms.split("[ ${#nodes[@]} -gt 0 ] ||", 1)[-1])
    made = {"token", "ca.pem", "ca.key"}
    for node in (m.group(1).split() if m else []):
        made |= {f"{node}.pem", f"{node}.key"}
    for name, s in (doc.get("secrets") or {}).items():
        if "file" in s:
            checked["refs"] += 1
            fn = os.path.basename(s["file"])
            if fn not in made:
                err(f"{where} secrets.{name}: {s['file']} is not a file deploy/swarm/make-secrets.sh writes")
    sched_port = None
    for sname, svc in (doc.get("services") or {}).items():
        w = f"{where} services.{sname}"
        b = svc.get("build")
        if b:
            ctx = os.path.join(base, b.get("context", ".") if isinstance(b, dict) else b)
            exists(ctx, f"{w} build.context")
            if isinstance(b, dict) and "dockerfile" in b:
                exists(os.path.join(ctx, b["dockerfile"]), f"{w} build.dockerfile")
        for cfg in svc.get("configs") or []:
            if isinstance(cfg, dict) and cfg.get("source") not in (doc.get("configs") or {}):
                err(f"{w}: config {cfg.get('source')} is not defined")
        for sec in svc.get("secrets") or []:
            sn = sec if isinstance(sec, str) else sec.get("source")
            if sn not in (doc.get("secrets") or {}):
                err(f"{w}: secret {sn} is not defined")
        cmd = svc.get("command")
        if cmd:
            argv = shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd]
            sub = check_invocation(argv, f"{w} command")
            if sub and "--config" in argv:
                for key in cluster_cfg:
                    checked["flags"] += 1
                    if key not in (options(sub) or set()) and key not in ignored_keys(sub):
                        err(f"{w}: the config file's key {key!r} is not an option of `canopy {sub}`")
            lp, ap = url_port(flag_value(argv, "listen")), url_port(flag_value(argv, "advertise"))
            if ap is not None and ap != lp:
                err(f"{w}: --advertise port {ap} differs from --listen port {lp}")
            if lp is not None and lp not in exposed:
                err(f"{w}: port {lp} is not EXPOSEd by deploy/Dockerfile")
            if sub == "scheduler":
                sched_port = lp
        hc = svc.get("healthcheck") or {}
        test = hc.get("test")
        if isinstance(test, list) and test:
            if test[0] == "CMD":
                if os.path.basename(test[1]) != "canopy":
                    err(f"{w}: health check does not run canopy")
                check_invocation([str(x) for x in test[2:]], f"{w} healthcheck")
            elif test[0] == "CMD-SHELL":
                shell_invocations(test[1], f"{w} healthcheck")
        elif cmd and not test:
            err(f"{w}: no health check")
        env = svc.get("environment") or {}
        if isinstance(env, dict) and "CANOPY_SCHEDULER" in env:
            p = url_port(str(env["CANOPY_SCHEDULER"]))
            if sched_port is not None and p != sched_port:
                err(f"{w}: CANOPY_SCHEDULER port {p} is not the scheduler's {sched_port}")
    if cluster_cfg.get("scheduler") and sched_port is not None:
        if url_port(cluster_cfg["scheduler"]) != sched_port:
            err(f"{where}: cluster.json's scheduler port is not the scheduler service's {sched_port}")

for path in (f"{dep}/compose.yaml", f"{dep}/swarm/stack.yaml"):
    if path not in docs:
        err(f"{rel(path)}: missing")
        continue
    check_services(path, docs[path])
stack = docs.get(f"{dep}/swarm/stack.yaml") or {}
labels = set()
for svc in (stack.get("services") or {}).values():
    d = svc.get("deploy") or {}
    for c in (d.get("placement") or {}).get("constraints") or []:
        labels.add(c.replace(" ", ""))
    if not d.get("restart_policy"):
        err("deploy/swarm/stack.yaml: a service has no restart_policy")
for want in ("node.labels.canopy.scheduler==true", "node.labels.canopy.ps==true",
             "node.labels.canopy.worker==true"):
    if want not in labels:
        err(f"deploy/swarm/stack.yaml: no service placed by {want}")
# Virtual IPs need IPVS in the kernel; every service resolves to its task.
for name, svc in (stack.get("services") or {}).items():
    if (svc.get("deploy") or {}).get("endpoint_mode") != "dnsrr":
        err(f"deploy/swarm/stack.yaml services.{name}: endpoint_mode is not dnsrr")

# --- systemd units ---
units = sorted(glob.glob(f"{dep}/systemd/*.service"))
if len(units) < 3:
    err("deploy/systemd: expected canopy-scheduler, canopy-ps and canopy-worker units")
for u in units:
    with open(u) as f:
        text = re.sub(r"\\\n", " ", f.read())
    if "EnvironmentFile=/etc/canopy/canopy.env" in text:
        exists(f"{dep}/systemd/canopy.env.example", rel(u))
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            shell_invocations(line.split("=", 1)[1], rel(u))

# --- cloud-init: its Dockerfile path ---
ci = docs.get(f"{dep}/cloud-init.yaml") or {}
for wf in ci.get("write_files") or []:
    for m in re.finditer(r"/opt/canopy-src/(deploy/[A-Za-z0-9_./-]+)", wf.get("content", "")):
        exists(os.path.join(root, m.group(1)), "deploy/cloud-init.yaml")

# --- README's Deployment section ---
readme = os.path.join(root, "README.md")
with open(readme) as f:
    rd = f.read()
m = re.search(r"^## Deployment\n(.*?)(?=^## |\Z)", rd, re.S | re.M)
if not m:
    err("README.md: no Deployment section")
else:
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", m.group(1), re.S):
        block = re.sub(r"\\\n", " ", block)
        shell_invocations(block, "README.md Deployment")
        for p in re.findall(r"(?<![\w/.-])((?:deploy|data|bench)/[A-Za-z0-9_./-]+)", block):
            exists(os.path.join(root, p), "README.md Deployment")

for e in errors:
    print("check: FAIL:", e)
print("check: {yaml} YAML and {json} JSON files parse; {refs} references, {invocations} canopy "
      "invocations and {flags} flags checked".format(**checked))
sys.exit(1 if errors else 0)
PY

if command -v shellcheck >/dev/null; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  python3 - "$root/deploy/cloud-init.yaml" > "$tmp" <<'PY'
import sys, yaml
for wf in yaml.safe_load(open(sys.argv[1])).get("write_files") or []:
    if wf.get("content", "").startswith("#!/bin/bash"):
        print(wf["content"])
PY
  shellcheck -x "$root"/deploy/sim/*.sh "$root"/deploy/swarm/*.sh "$root"/deploy/docker-entrypoint.sh \
    "$root"/tests/deploy/docker.sh "$tmp"
  echo "check: shellcheck clean (deploy/sim, deploy/swarm, the image's entry point, tests/deploy/docker.sh, cloud-init script)"
else
  echo "check: shellcheck not installed; scripts not linted"
fi
echo "check: deploy files ok"
