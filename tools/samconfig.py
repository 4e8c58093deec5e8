"""One environment's deploy settings from samconfig.toml, for a deploy that runs unattended (CI).

samconfig.toml holds each environment's parameters; a command line's ``--parameter-overrides``
replaces that whole set, so a workflow that must supply a value of its own (the SES sender, the
alarms' email, from the GitHub environment's variables) asks this for the environment's set with
those keys replaced, instead of repeating the list:

    python -m tools.samconfig dev stack-name
    python -m tools.samconfig dev region
    python -m tools.samconfig dev parameter-overrides SenderEmail=shop@example.com AlarmEmail=

An empty value (a variable the environment does not set) keeps samconfig's value, or the template's
default. A value still samconfig's placeholder (REPLACE-WITH-...) is refused here, by its key,
rather than by CloudFormation after the upload. Standard library only: it runs before any
virtualenv exists.
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"
PLACEHOLDER = "REPLACE-WITH-"


class SamconfigError(ValueError):
    pass


def load(path: Path = SAMCONFIG) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def setting(config: dict[str, Any], environment: str, key: str) -> str:
    """The value `sam deploy --config-env <environment>` uses: its deploy section's, else its global one's."""
    sections = config.get(environment)
    if sections is None:
        raise SamconfigError(f"samconfig.toml has no environment {environment!r}")
    for command in ("deploy", "global"):
        value = sections.get(command, {}).get("parameters", {}).get(key)
        if value is not None:
            return str(value)
    raise SamconfigError(f"samconfig.toml's {environment} environment sets no {key}")


def parse_overrides(text: str) -> dict[str, str]:
    pairs = {}
    for word in shlex.split(text):
        key, separator, value = word.partition("=")
        if not separator or not key:
            raise SamconfigError(f"not KEY=VALUE in parameter_overrides: {word!r}")
        pairs[key] = value
    return pairs


def parameter_overrides(config: dict[str, Any], environment: str, replacements: dict[str, str]) -> str:
    """The environment's parameter_overrides with the non-empty replacements applied, as one argument."""
    pairs = parse_overrides(setting(config, environment, "parameter_overrides"))
    pairs.update({key: value for key, value in replacements.items() if value})
    unset = [key for key, value in pairs.items() if value.startswith(PLACEHOLDER)]
    if unset:
        raise SamconfigError(f"still samconfig.toml's placeholder in {environment}: {', '.join(unset)}")
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in pairs.items())


def parse_replacements(arguments: list[str]) -> dict[str, str]:
    replacements = {}
    for argument in arguments:
        key, separator, value = argument.partition("=")
        if not separator or not key:
            raise SamconfigError("expected KEY=VALUE arguments")  # never echo it: the value may be an email
        replacements[key] = value
    return replacements


def main(argv: list[str], config: dict[str, Any] | None = None) -> str:
    match argv:
        case [environment, "stack-name"]:
            return setting(config or load(), environment, "stack_name")
        case [environment, "region"]:
            return setting(config or load(), environment, "region")
        case [environment, "parameter-overrides", *arguments]:
            return parameter_overrides(config or load(), environment, parse_replacements(arguments))
    raise SamconfigError("usage: python -m tools.samconfig ENV stack-name|region|parameter-overrides [KEY=VALUE ...]")


if __name__ == "__main__":
    try:
        print(main(sys.argv[1:]))
    except SamconfigError as error:
        sys.exit(f"tools.samconfig: {error}")
