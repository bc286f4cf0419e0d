"""Mutation check of the model-based test: break each wallet rule in turn, run
tests/wallet/test_stateful.py (no shrinking), and say whether the test failed (KILLED).

Run by hand, from the repository root, on a clean tree (it rewrites each file and restores it):
`.venv/bin/python tests/wallet/mutate_rules.py ["rule name" ...]`.
"""

import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
MUTANTS = [
    (
        "proportional split",
        "wallet/rules.py",
        "cash_share = call.amount * the_bet.cash_part // the_bet.amount",
        "cash_share = call.amount - min(call.amount, the_bet.bonus_part)",
    ),
    (
        "bonus share forfeited once its bonus ended",
        "wallet/rules.py",
        "bonus_home = BONUS if bonus_rules.funding_bonus(state, the_bet) else BONUS_FUNDING",
        "bonus_home = BONUS if state.active_bonus(purse_key) else BONUS_FUNDING",
    ),
    (
        "expiry booked by the next call",
        "wallet/bonus_rules.py",
        "if bonus is None or bonus.expires_at > state.now:",
        "if True:",
    ),
    (
        "closing win settles the round",
        "wallet/rules.py",
        "            if key != bet_key(call):",
        "            if False:",
    ),
    (
        "rollback in a closed round refused",
        "wallet/rules.py",
        """    if _round_key(call, the_bet.round_id) in state.closed_rounds:
        detail = f"round {the_bet.round_id} is closed"
        return refuse(state, call, RoundClosed, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.settled:""",
        """    if the_bet.status is BetStatus.settled:""",
    ),
    (
        "credits paid into cash",
        "wallet/rules.py",
        "return accept(state, call, purse_key, lines, (call.amount, call.amount, 0))",
        "return accept(state, call, purse_key, lines[:1] + [(BONUS, call.amount)], (call.amount, 0, call.amount))",
    ),
    (
        "max bet",
        "wallet/rules.py",
        "if max_bet is not None and bonus_part > 0 and call.amount > max_bet:",
        "if max_bet is not None and bonus_part > 0 and call.amount > max_bet + 10:",
    ),
    (
        "withdrawal forfeits the active bonus",
        "wallet/bonus_rules.py",
        '    if bonus is None:\n        return Decision(ACCEPTED, {"bonus": None})',
        '    if True:\n        return Decision(ACCEPTED, {"bonus": None})',
    ),
    (
        "win refused bet_not_found unrecorded",
        "wallet/rules.py",
        "return unrecorded(BetNotFound, detail, _balance_for(state, call))",
        "return refuse(state, call, BetNotFound, detail, *_unknown_bet_purse(state, call))",
    ),
    (
        "wagering of the bet's own bonus",
        "wallet/bonus_rules.py",
        "bonus = funding_bonus(state, bet)",
        "bonus = state.active_bonus((bet_merchant := next(iter(state.customers))[0], bet.customer_id, bet.currency))",
    ),
    (
        "rollback after completion returns the bonus part to cash",
        "wallet/rules.py",
        "to_cash = the_bet.cash_part + (the_bet.bonus_part if status is BonusStatus.completed else 0)",
        "to_cash = the_bet.cash_part",
    ),
]

test = (ROOT / "tests/wallet/test_stateful.py").read_text()
fast = test.replace(
    "deadline=None,",
    "deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate], database=None,",
)
fast = fast.replace(
    "from hypothesis import HealthCheck, event, settings",
    "from hypothesis import HealthCheck, Phase, event, settings",
)
assert fast != test
tmp_test = ROOT / "tests/wallet/test_stateful_mutant_tmp.py"
tmp_test.write_text(fast)
names = sys.argv[1:]
try:
    for name, path, old, new in MUTANTS:
        if names and name not in names:
            continue
        file = ROOT / path
        original = file.read_text()
        assert original.count(old) == 1, (name, original.count(old))
        file.write_text(original.replace(old, new))
        try:
            run = subprocess.run(
                [
                    ".venv/bin/pytest",
                    str(tmp_test),
                    "-q",
                    "-x",
                    "-p",
                    "no:randomly",
                    "-p",
                    "no:cacheprovider",
                    f"--basetemp={tempfile.gettempdir()}/paysaga-mutants",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=1500,
            )
            last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]
            print(f"{'KILLED' if run.returncode else 'SURVIVED'}: {name}: {last}", flush=True)
        finally:
            file.write_text(original)
finally:
    tmp_test.unlink()
