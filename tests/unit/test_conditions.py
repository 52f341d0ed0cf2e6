from hypothesis import given, strategies as st

from trio_procmgr.conditions import evaluate_conditions

EXISTING = {"/etc/app.conf", "/opt/bin/agent", "/etc/managed.conf"}
exists = EXISTING.__contains__


def test_no_conditions_allow_the_start():
    assert evaluate_conditions([], exists)[0]


def test_plain_paths_must_all_exist():
    assert evaluate_conditions(["/etc/app.conf", "/opt/bin/agent"], exists)[0]
    ok, reason = evaluate_conditions(["/etc/app.conf", "/etc/missing"], exists)
    assert not ok
    assert "/etc/missing does not exist" in reason


def test_negated_path_must_not_exist():
    assert evaluate_conditions(["!/etc/disabled"], exists)[0]
    ok, reason = evaluate_conditions(["!/etc/app.conf"], exists)
    assert not ok
    assert "!/etc/app.conf" in reason and "exists" in reason


def test_one_pipe_entry_is_enough():
    assert evaluate_conditions(["|/etc/missing", "|/etc/managed.conf"], exists)[0]


def test_pipe_set_fails_when_none_holds_and_names_them_all():
    ok, reason = evaluate_conditions(["|/etc/a", "|/etc/b"], exists)
    assert not ok
    assert "|/etc/a" in reason and "|/etc/b" in reason


def test_negated_pipe_entry_counts_when_path_is_absent():
    assert evaluate_conditions(["|/etc/app.conf.missing-too", "|!/etc/disabled"], exists)[0]


def test_plain_conditions_still_apply_when_a_pipe_entry_holds():
    ok, reason = evaluate_conditions(["|/etc/app.conf", "/etc/missing"], exists)
    assert not ok and "/etc/missing" in reason


def test_mixed_systemd_example():
    conds = ["/opt/bin/agent", "!/etc/otel/disabled", "|/etc/otel/config.yaml", "|/etc/managed.conf"]
    assert evaluate_conditions(conds, exists)[0]


paths = st.sampled_from(["/a", "/b", "/c", "/d"])


@given(st.lists(st.tuples(st.booleans(), st.booleans(), paths), max_size=6), st.sets(paths))
def test_matches_the_systemd_rule(entries, present):
    conds = [("|" if pipe else "") + ("!" if neg else "") + path for pipe, neg, path in entries]
    holds = [(path in present) != neg for _, neg, path in entries]
    plain = [h for (pipe, _, _), h in zip(entries, holds) if not pipe]
    piped = [h for (pipe, _, _), h in zip(entries, holds) if pipe]
    expected = all(plain) and (not piped or any(piped))
    assert evaluate_conditions(conds, present.__contains__)[0] == expected
