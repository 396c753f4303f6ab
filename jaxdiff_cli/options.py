"""The options a command received, and the Request they make: what cli.py hands to operations.

Plain data, no Typer: cli.py declares the options (their words are in helptext.py), collects what
a command received into ``Common``, and ``Common.request`` builds the Request, importing the
loader's parsers only then, so that ``--help`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jaxdiff_cli.errors import UsageError

if TYPE_CHECKING:
    from jaxdiff_cli.engine.runtime import Cluster
    from jaxdiff_cli.operations import Pictures, Request
    from jaxdiff_cli.target import Target


@dataclass(frozen=True)
class Common:
    """The shared options, as each command received them (absent ones keep their defaults)."""

    spec: str | None = None
    fn: str | None = None
    primal: list[str] | None = None
    wrt: list[str] | None = None
    tangent: list[str] | None = None
    cotangent: str | None = None
    dtype: str | None = None
    device: str | None = None
    json_: bool = False
    output: Path | None = None
    quiet: bool = False
    debug: bool = False
    no_cache: bool = False
    check_finite: bool = False
    bake_primals: bool = False
    has_aux: bool = False
    no_code: bool = False
    devices: str | None = None
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    mode: str | None = None
    chunk_size: str | None = None
    value: bool = True
    plot: bool = False
    plot_file: Path | None = None
    spy: bool = False
    summary: bool = False
    cases: list[str] | None = None
    holomorphic: bool = False
    order: int | None = None
    sparse: bool = False

    def cluster(self) -> Cluster | None:
        """The cluster to join, from --coordinator and friends (or JAX_* variables)."""
        given = [self.coordinator, self.num_processes, self.process_id]
        if all(v is None for v in given):
            return None
        if any(v is None for v in given):
            raise UsageError("several hosts need --coordinator, --num-processes and --process-id together")
        from jaxdiff_cli.engine.runtime import Cluster

        return Cluster(str(self.coordinator), int(self.num_processes or 1), int(self.process_id or 0))

    def request(self, command: str, target: Target | None = None, pictures: Pictures | None = None) -> Request:
        """The Request of ``command``; ``target`` is -o, checked before (Target.of)."""
        from jaxdiff_cli.inputs.spec import Overrides, parse_chunk_size, parse_order
        from jaxdiff_cli.operations import Request
        from jaxdiff_cli.prepare import Options

        overrides = Overrides(
            function=self.fn,
            primals=tuple(self.primal or ()),
            wrt=tuple(self.wrt or ()),
            tangents=tuple(self.tangent or ()),
            cotangent=self.cotangent,
            dtype=self.dtype,
            device=self.device,
            has_aux=self.has_aux,
            no_code=self.no_code,
            cases=tuple(self.cases or ()),
            holomorphic=self.holomorphic,
        )
        options = Options(
            mode=self.mode,
            chunk_size=parse_chunk_size(self.chunk_size, "--chunk-size"),
            value=self.value,
            bake_primals=self.bake_primals,
            order=parse_order(self.order, "--order"),
            sparse=self.sparse or None,
        )
        return Request(
            command=command,
            spec_path=self.spec,
            overrides=overrides,
            options=options,
            devices=self.devices,
            cluster=self.cluster(),
            no_cache=self.no_cache,
            target=target,
            pictures=pictures,
        )

    @property
    def shows_progress(self) -> bool:
        return not (self.json_ or self.quiet)

    def pictures(self) -> Pictures:
        """--plot, --plot-file, --spy and --summary."""
        from jaxdiff_cli.operations import Pictures

        return Pictures(terminal=self.plot, file=self.plot_file, spy=self.spy, summary=self.summary)
