"""Offline induction: a typed, bottom-up enumerative synthesizer of compilable RASP programs.

``SearchInducer`` is the Inducer; ``synthesize``/``synthesize_task`` return ranked ``Found``
programs (each with its source, summary, layer count and ``to_rasp()``) for scripts and tests.

Modules, one job each:

* ``dsl``         expression nodes, functions (callable + source text), costs
* ``primitives``  the function library (Maps, SequenceMaps, Select predicates)
* ``evaluate``    numpy semantics equal to ``rasp.evaluate``, value sets as tracr infers them
* ``enumerator``  the cheapest-first search with observational-equivalence pruning
* ``goals``       goal-directed shortcuts that complete a program from one bank entry
* ``tables``      functions inferred from the data: the Map / SequenceMap the target implies
                  (a library function when one fits, else the observed table), made total,
                  refused when the examples leave a reachable entry undetermined
* ``blocks``      generic multi-step idioms (running sums and balances, quantifiers over
                  positions, nearest marked position, argmax, window reads at offsets from
                  either end, numerical outputs with their sign) the goals and the bank use
* ``lower``       folding Maps the way tracr allows; tracr's layer count
* ``render``      readable RASP source; ``build`` the same program as a rasp object
* ``synthesize``  examples -> ranked programs; ``inducer`` the Inducer protocol
"""

from autoconn.inducers.search.enumerator import Search, SearchConfig
from autoconn.inducers.search.inducer import SearchInducer
from autoconn.inducers.search.synthesize import Found, Synthesis, synthesize, synthesize_task

__all__ = ["Found", "Search", "SearchConfig", "SearchInducer", "Synthesis", "synthesize", "synthesize_task"]
