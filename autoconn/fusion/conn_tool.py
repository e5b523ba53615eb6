"""A library CoNN ready for fusion: its runtime plus its fusion spec, turning operands into answer text.

Loading goes through the library (stored weights, no recompiling); the specs of CoNNs used
together are checked for clashes before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoconn.conn.artifact import Library, LibraryEntry
from autoconn.conn.runtime import ConnRuntime
from autoconn.fusion.gate import GateRule
from autoconn.fusion.metadata import FusionSpec, check_together, spec_of_meta
from autoconn.task import Token


@dataclass
class FusedConn:
    """One CoNN in a fusion: `answer_many` runs the compiled model on parsed operands."""

    name: str
    spec: FusionSpec
    runtime: ConnRuntime
    proven_length: int | None = None  # operands longer than this go back to the LM (None: the compiled length)

    @classmethod
    def from_entry(cls, entry: LibraryEntry, spec: FusionSpec | None = None, *,
                   unverified_lengths: bool = False) -> FusedConn:
        """`unverified_lengths`: also hand it operands beyond its proven length (up to the compiled one)."""
        return cls(entry.name, spec or spec_of_meta(entry.name, entry.meta), entry.runtime(),
                   None if unverified_lengths else entry.verified_length)

    @property
    def max_seq_len(self) -> int:
        """The longest operand the gate hands this CoNN: the length it is proven up to, by default."""
        compiled = self.runtime.spec.max_seq_len
        return compiled if self.proven_length is None else min(compiled, self.proven_length)

    @property
    def rule(self) -> GateRule:
        return GateRule(self.name, self.spec, self.max_seq_len)

    def answer_many(self, operands: Sequence[Sequence[Token]]) -> list[str]:
        """The answer text for each operand, in one batched run of the CoNN."""
        return [self.spec.render_output(values) for values in self.runtime.run([list(o) for o in operands])]

    def answer(self, operand: Sequence[Token]) -> str:
        return self.answer_many([operand])[0]

def load_fused_conns(names: Sequence[str], library: Library | str | Path = "generated_conns", *,
                     unverified_lengths: bool = False) -> list[FusedConn]:
    """The named library CoNNs with their specs; raises LibraryError (unknown name) or
    FusionSpecError (bad or clashing specs) before loading any weights. Each refuses operands
    longer than it is proven on (the LM writes those) unless `unverified_lengths`."""
    library = library if isinstance(library, Library) else Library(library)
    entries = [library.get(name) for name in dict.fromkeys(names)]
    specs = {entry.name: spec_of_meta(entry.name, entry.meta) for entry in entries}
    check_together(specs)
    return [FusedConn.from_entry(entry, specs[entry.name], unverified_lengths=unverified_lengths) for entry in entries]


def check_fused(conns: Sequence[FusedConn]) -> None:
    """Clash check for CoNNs built by hand rather than by load_fused_conns."""
    names = [c.name for c in conns]
    if len(set(names)) != len(names):
        raise ValueError(f"a CoNN appears twice among {names}")
    check_together({c.name: c.spec for c in conns})
