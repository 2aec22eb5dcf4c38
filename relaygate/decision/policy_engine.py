"""Policy engines: evaluate the gateway's Rego entry point for one policy input.

:class:`PolicyEngine` is the small interface the processor depends on; the
in-process :class:`RegorusEngine` is the default and a remote OPA server can
be a second implementation. The entry point is compiled to regorus' RVM
bytecode, which evaluates the gateway policy in ~40 µs where the tree-walking
interpreter takes ~120 µs; the interpreter stays as the fallback for Rego the
compiler does not support. Regorus objects may only be touched by the thread
that made them (even ``clone()`` of a template panics elsewhere), so each
thread builds its own from the same sources on first use (once per thread);
the server runs all decisions on its event-loop thread.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson
import regorus
import yaml

ENTRY_POINT = "data.relaygate.gateway.decision"
log = logging.getLogger("relaygate.policy")


class PolicyError(Exception):
    """A policy failed to load or evaluate; the message is safe to show to an operator."""


class PolicyUnavailable(PolicyError):
    """A remote engine could not be asked (down, slow): the call is refused 503, never let through."""


class PolicyEngine(Protocol):
    def decide(self, input_json: str) -> dict[str, Any]: ...


class RemoteEngine(Protocol):
    """An engine in another process (relaygate/extproc/opa_engine.py): decisions are awaited, so a
    transport answers other calls while one waits. ``remote`` tells Admission to take that path."""

    remote: bool

    async def decide_async(self, input_json: str) -> dict[str, Any]: ...


def _clean(err: BaseException) -> str:
    """Regorus errors carry a Rust backtrace; keep the message with its line/column."""
    return str(err).split("Stack backtrace:")[0].strip()


def load_policy_sources(policy_dir: Path, include_tests: bool = False) -> tuple[dict[str, str], dict[str, Any]]:
    """Rego modules by relative path, and the merged YAML/JSON data documents."""
    policy_dir = Path(policy_dir)
    if not policy_dir.is_dir():
        raise PolicyError(f"{policy_dir}: policy directory not found")
    modules = {
        str(p.relative_to(policy_dir)): p.read_text()
        for p in sorted(policy_dir.rglob("*.rego"))
        if include_tests or not p.name.endswith("_test.rego")
    }
    data: dict[str, Any] = {}
    for p in sorted(policy_dir.rglob("*.yaml")) + sorted(policy_dir.rglob("*.json")):
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise PolicyError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(doc, dict):
            raise PolicyError(f"{p}: data document must be a mapping")
        _merge(data, doc, str(p))
    return modules, data


def _merge(dst: dict[str, Any], src: dict[str, Any], where: str) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v, where)
        elif k in dst:
            raise PolicyError(f"{where}: data key '{k}' defined twice")
        else:
            dst[k] = v


def build_engine(modules: dict[str, str], data: dict[str, Any]) -> "regorus.Engine":
    engine = regorus.Engine()
    try:
        for path, text in modules.items():
            engine.add_policy(path, text)
        engine.add_data_json(json.dumps(data))
    except BaseException as e:  # regorus raises RuntimeError, PanicException (BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise PolicyError(_clean(e)) from None
    return engine


def build_vm(modules: dict[str, str], data: dict[str, Any]) -> "regorus.Rvm":
    data_json = json.dumps(data)
    try:
        program = regorus.Program.compile_from_modules(data_json, list(modules.items()), [ENTRY_POINT])
        vm = regorus.Rvm()
        vm.load_program(program)
        vm.set_data_json(data_json)
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise PolicyError(_clean(e)) from None
    return vm


class RegorusEngine:
    """Evaluates the entry point; built from a policy directory or from (modules, data)."""

    def __init__(
        self,
        policy_dir: Path | None = None,
        compiled: bool = True,
        sources: tuple[dict[str, str], dict[str, Any]] | None = None,
    ) -> None:
        if sources is None:
            if policy_dir is None:
                raise TypeError("RegorusEngine needs a policy_dir or sources")
            sources = load_policy_sources(policy_dir)
        self._sources = sources
        self._local = threading.local()
        engine = build_engine(*self._sources)  # validates every module, with line/column errors
        if "data.relaygate.gateway" not in engine.get_packages():
            raise PolicyError("policies must define package relaygate.gateway with rule 'decision'")
        self.compiled = compiled
        if compiled:
            try:
                build_vm(*self._sources)
            except PolicyError as e:
                log.warning("policy does not compile to RVM bytecode (%s); using the interpreter", e)
                self.compiled = False

    def _evaluator(self) -> Any:
        """This thread's regorus.Rvm (compiled) or regorus.Engine (interpreter); regorus has no types."""
        ev = getattr(self._local, "evaluator", None)
        if ev is None:
            ev = self._local.evaluator = (build_vm if self.compiled else build_engine)(*self._sources)
        return ev

    def decide(self, input_json: str) -> dict[str, Any]:
        ev = self._evaluator()
        try:
            ev.set_input_json(input_json)
            result = orjson.loads(ev.execute()) if self.compiled else ev.eval_rule(ENTRY_POINT)
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise PolicyError(_clean(e)) from None
        if not isinstance(result, dict) or "allow" not in result:
            raise PolicyError(f"{ENTRY_POINT} returned no decision")
        return result
