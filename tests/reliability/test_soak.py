"""Soak smoke test (bench/reliability/soak.py for 15 seconds): under a steady request rate
with revocations, bans, expiries and admin token rotations happening meanwhile, every
answer is right and nothing answers 5xx."""

from __future__ import annotations

from pathlib import Path

import soak

SECONDS = 15
RATE = 80


async def test_soak_smoke(tmp_path: Path) -> None:
    options = soak.Options(
        minutes=SECONDS / 60, rate=RATE, warmup=3, good_tokens=300, bad_tokens=50,
        registered=60, session_ttl="6s", leeway="1s", login_every=0.25, revoke_every=0.4,
        ban_every=1.0, unban_after=(1.0, 3.0), rotate_every=2.0, admin_revoke_every=5.0,
        sample_every=5.0, folder=tmp_path, quiet=True,
    )
    summary = await soak.run(options)
    print("\n" + soak.render(summary))
    assert summary["wrong"] == 0, "\n".join(summary["wrong_examples"])
    assert summary["status_5xx"] == 0
    assert summary["admin_failures"] == 0, summary["wrong_examples"]
    assert summary["requests"] >= 0.9 * SECONDS * RATE
    states = summary["states_answered"]
    for state in ("access valid", "access revoked", "access banned", "access expired",
                  "admin superseded", "admin revoked"):
        assert states.get(state, 0) > 0, f"no answer for a credential in state {state!r}"
    assert summary["canary"]["judged_wrong"] > 0 and summary["canary"]["judged_right"] == 0
    assert summary["gateway_exit_code"] == 0
    assert summary["rss_kib"]["start"] and summary["rss_kib"]["end"]
