"""Helpers of scripts/check-chart.sh that read rendered chart output.

Each subcommand reads a YAML stream that `helm template` wrote:

  config RENDERED DIR      writes DIR/portcullis.toml from the ConfigMap, with
                           the Secret's keys as files under DIR/secrets (or
                           placeholders where the chart names an existing
                           Secret), for `portcullis check-config`
  annotation RENDERED KEY  prints the pod template annotation KEY of the
                           Deployment
  query RENDERED KIND NAME PATH
                           prints, as compact JSON with sorted keys, the value
                           at PATH (keys and list indexes joined by dots) in
                           the object of KIND named NAME, or null when absent
  notes RENDERED           prints the `notes` key of the notes-check ConfigMap
  sidecar-pod README OUT   writes a Pod manifest built from the README's
                           sidecar snippet, for kubernetes-validate
  install-args README      prints the arguments of the README's `helm install`
                           command after the chart path, one per line, with
                           each <placeholder> replaced by an example value

Runs with the Python of .venv-k8s, which has PyYAML.
"""

import base64
import json
import pathlib
import re
import shlex
import sys

import yaml

SECRET_DIR = "/var/run/secrets/portcullis"

# Values for the keys of an existing Secret, which the chart does not render.
PLACEHOLDER_SECRETS = {
    "client-secret": "placeholder-client-secret",
    "cookie-keys": "placeholder-cookie-key-0123456789-abcdefghijklmnop",
    "redis-url": "redis://redis.example.svc:6379/0",
    "database-url": "postgres://portcullis:password@postgres.example.svc:5432/portcullis",
}


def load_objects(path):
    with open(path, encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def find_object(objects, kind, name=None):
    for document in objects:
        if document.get("kind") != kind:
            continue
        if name is None or document["metadata"]["name"] == name:
            return document
    raise SystemExit(f"chart_checks: no {kind} {name or ''} in the rendered output")


def secret_values(objects):
    """Returns the rendered Secret's keys and values, or None when there is none."""
    secrets = [document for document in objects if document.get("kind") == "Secret"]
    if not secrets:
        return None
    secret = secrets[0]
    values = dict(secret.get("stringData") or {})
    for key, encoded in (secret.get("data") or {}).items():
        values[key] = base64.b64decode(encoded).decode("utf-8")
    return values


def write_config(rendered, out_dir):
    objects = load_objects(rendered)
    config_map = find_object(objects, "ConfigMap")
    toml = config_map["data"]["portcullis.toml"]
    out = pathlib.Path(out_dir)
    secrets_dir = out / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)

    values = secret_values(objects)
    for key in re.findall(re.escape(SECRET_DIR) + r"/([a-z-]+)", toml):
        if values is None:
            value = PLACEHOLDER_SECRETS[key]
        elif key in values:
            value = values[key]
        else:
            raise SystemExit(f"chart_checks: key {key} is missing from the Secret, but the configuration reads it")
        (secrets_dir / key).write_text(value, encoding="utf-8")

    config_path = out / "portcullis.toml"
    config_path.write_text(toml.replace(SECRET_DIR, str(secrets_dir)), encoding="utf-8")
    print(config_path)


def print_annotation(rendered, key):
    deployment = find_object(load_objects(rendered), "Deployment")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    print(annotations.get(key, ""))


def print_query(rendered, kind, name, path):
    value = find_object(load_objects(rendered), kind, name)
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            value = None
            break
    print(json.dumps(value, sort_keys=True, separators=(",", ":")))


def print_notes(rendered):
    print(find_object(load_objects(rendered), "ConfigMap", "notes-check")["data"]["notes"])


def write_sidecar_pod(readme, out):
    """Wraps the README's sidecar snippet in a Pod beside a dashboard container."""
    text = pathlib.Path(readme).read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(# In the dashboard's pod spec.*?)```", text, re.DOTALL)
    if match is None:
        raise SystemExit("chart_checks: the README's sidecar snippet was not found")
    snippet = yaml.safe_load(match.group(1))
    dashboard = {"name": "dashboard", "image": "example/dashboard:1.0", "ports": [{"containerPort": 3000}]}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dashboard"},
        "spec": {"containers": [dashboard, *snippet["containers"]], "volumes": snippet["volumes"]},
    }
    pathlib.Path(out).write_text(yaml.safe_dump(pod), encoding="utf-8")


def print_install_args(readme):
    text = pathlib.Path(readme).read_text(encoding="utf-8")
    match = re.search(r"^helm install portcullis charts/portcullis (.*?[^\\])$", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise SystemExit("chart_checks: the README's helm install command was not found")
    command = re.sub(r"<[^>]*>", "example", match.group(1).replace("\\\n", " "))
    for argument in shlex.split(command):
        print(argument)


def main(arguments):
    commands = {
        "config": (write_config, 2),
        "annotation": (print_annotation, 2),
        "query": (print_query, 4),
        "notes": (print_notes, 1),
        "sidecar-pod": (write_sidecar_pod, 2),
        "install-args": (print_install_args, 1),
    }
    if not arguments or arguments[0] not in commands:
        raise SystemExit(__doc__)
    function, count = commands[arguments[0]]
    if len(arguments) != count + 1:
        raise SystemExit(__doc__)
    function(*arguments[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
