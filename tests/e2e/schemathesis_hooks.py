"""Schemathesis extension loaded by tests/e2e/test_contract_fuzz.py (SCHEMATHESIS_HOOKS).

``format: display-name`` is the contract's own string format: 1-200 characters, none of them a
control, format or surrogate character (Unicode Cc, Cf, Cs), the rule of
``service.domain.text.display_name_problem``. The schema's ``pattern`` says what an ECMA-262
pattern can (every BMP control and format character), but not the supplementary-plane format
characters (U+E0001 tags...). Generating from the rule itself keeps schemathesis' positive data
valid; negative data still comes from the schema.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

DISPLAY_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs")), min_size=1, max_size=200
)

schemathesis.openapi.format("display-name", DISPLAY_NAME)
