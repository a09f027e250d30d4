"""Shared settings for the fuzzers (tests/test_fuzz_*.py).

The suite runs a modest number of examples per property so it stays quick;
``CHATAPP_FUZZ_EXAMPLES=5000`` (say) runs many more for a release check.
Hypothesis' deadline is off: the machine is shared and busy, and timing is not the
property under test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CHATAPP_FUZZ_EXAMPLES", "60"))

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CHATAPP_FUZZ_EXAMPLES") is None,  # the suite is repeatable
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# Any JSON value, numbers of every size included.
json_scalars = (
    st.none() | st.booleans() | st.text(max_size=30)
    | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=12,
)
