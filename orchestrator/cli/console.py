"""The two consoles: results on standard output, progress and problems on standard error.

No emoji codes: what we print holds user data (file paths, messages, outputs), and rich would turn
the `:100:` of `flow.yaml:100:5: ...` into 💯.
"""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
