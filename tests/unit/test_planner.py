"""The dependency planner: systemd semantics per directive, plus graph properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_procmgr import errors
from trio_procmgr.config.loader import parse_process
from trio_procmgr.planner import (
    RestartIntensity, boot_plan, conflicting, dependants, dependencies, find_ordering_cycle,
    group_restart_set, on_unexpected_stop, ordering_edges, restart_propagation,
    shutdown_plan, start_transaction, stop_transaction,
)
from trio_procmgr.spec import GroupSpec, HealthCheckSpec, ProcessSpec


def specs_of(**fields_by_name: dict) -> dict[str, ProcessSpec]:
    return {name: ProcessSpec(name=name, command="/bin/true",
                              **{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                 for k, v in f.items()})
            for name, f in fields_by_name.items()}


# --- pulling in -------------------------------------------------------------------------

def test_requires_wants_and_binds_to_pull_the_other_in():
    specs = specs_of(app={"requires": ["a"], "wants": ["b"], "binds_to": ["c"]},
                     a={}, b={}, c={}, unrelated={})
    assert set(start_transaction(specs, ["app"]).order) == {"app", "a", "b", "c"}


def test_pull_in_is_transitive():
    specs = specs_of(app={"requires": ["a"]}, a={"wants": ["b"]}, b={"binds_to": ["c"]}, c={})
    assert set(start_transaction(specs, ["app"]).order) == {"app", "a", "b", "c"}


def test_part_of_and_after_do_not_pull_the_other_in():
    specs = specs_of(app={"part_of": ["a"], "after": ["b"]}, a={}, b={})
    assert start_transaction(specs, ["app"]).order == ("app",)


def test_requires_without_ordering_starts_both_at_once():
    plan = start_transaction(specs_of(app={"requires": ["db"]}, db={}), ["app"])
    assert plan.step("app").wait_for == frozenset()
    assert plan.layers == (("app", "db"),)


def test_steps_record_who_pulled_them_in():
    plan = start_transaction(specs_of(app={"requires": ["db"]}, db={}), ["app"])
    assert plan.step("app").is_target and plan.step("app").pulled_in_by == ()
    assert plan.step("db").pulled_in_by == (("app", "requires"),)


def test_unknown_target_is_process_not_found():
    with pytest.raises(errors.ProcessNotFound) as info:
        start_transaction(specs_of(a={}), ["nope"])
    assert info.value.details["name"] == "nope"


def test_unknown_required_process_is_process_not_found_naming_the_dependant():
    with pytest.raises(errors.ProcessNotFound) as info:
        start_transaction(specs_of(app={"requires": ["ghost"]}), ["app"])
    assert info.value.details == {"name": "ghost", "dependant": "app", "directive": "requires"}


def test_unknown_wanted_process_is_ignored():
    assert start_transaction(specs_of(app={"wants": ["ghost"]}), ["app"]).order == ("app",)


# --- ordering ---------------------------------------------------------------------------

def test_after_orders_start_when_both_are_in_the_transaction():
    specs = specs_of(app={"requires": ["db"], "after": ["db"]}, db={})
    plan = start_transaction(specs, ["app"])
    assert plan.order == ("db", "app")
    assert plan.step("app").wait_for == {"db"}
    assert plan.layers == (("db",), ("app",))


def test_before_is_the_mirror_of_after():
    specs = specs_of(app={"requires": ["db"]}, db={"before": ["app"]})
    assert start_transaction(specs, ["app"]).step("app").wait_for == {"db"}


def test_independent_branches_share_a_layer():
    specs = specs_of(app={"requires": ["a", "b"], "after": ["a", "b"]},
                     a={"requires": ["base"], "after": ["base"]}, b={}, base={})
    plan = start_transaction(specs, ["app"])
    assert plan.layers == (("b", "base"), ("a",), ("app",))
    assert plan.step("b").wait_for == frozenset()


def test_ordering_cycle_is_config_error_spelling_out_the_cycle():
    specs = specs_of(a={"requires": ["b"], "after": ["b"]}, b={"after": ["a"]})
    with pytest.raises(errors.ConfigError) as info:
        start_transaction(specs, ["a"])
    assert "a -> b -> a" in info.value.message
    assert info.value.details["cycle"] == ["a", "b", "a"]


def test_ordering_cycle_outside_the_transaction_does_not_block_it():
    specs = specs_of(app={}, x={"after": ["y"]}, y={"after": ["x"]})
    assert start_transaction(specs, ["app"]).order == ("app",)


def test_find_ordering_cycle_returns_none_for_a_dag():
    specs = specs_of(a={"after": ["b"]}, b={"after": ["c"]}, c={"before": ["a"]})
    assert find_ordering_cycle(specs) is None


def test_find_ordering_cycle_follows_after_and_before():
    specs = specs_of(a={"after": ["c"]}, b={"after": ["a"]}, c={"after": ["b"]}, d={})
    assert find_ordering_cycle(specs) == ["a", "b", "c", "a"]
    mixed = specs_of(a={"before": ["b"]}, b={"after": ["c"]}, c={"after": ["a"], "before": ["a"]})
    cycle = find_ordering_cycle(mixed)
    assert cycle is not None and cycle[0] == cycle[-1]


def test_process_ordered_after_itself_is_a_cycle():
    assert find_ordering_cycle(specs_of(a={"after": ["a"]})) == ["a", "a"]


def test_ordering_on_undefined_process_is_ignored():
    assert find_ordering_cycle(specs_of(a={"after": ["ghost"], "before": ["ghost2"]})) is None


def test_wait_healthy_gates_on_predecessors_with_a_health_check():
    check = HealthCheckSpec(type="tcp", tcp_address="127.0.0.1:1")
    specs = specs_of(app={"requires": ["db", "q"], "after": ["db", "q"], "wait_healthy": True},
                     db={"health_check": check}, q={})
    assert start_transaction(specs, ["app"]).step("app").wait_healthy == {"db"}


# --- hard and soft failures ---------------------------------------------------------------

def test_failure_fails_hard_dependants_transitively_but_not_soft_ones():
    specs = specs_of(top={"wants": ["mid"], "after": ["mid"]},
                     mid={"requires": ["db"], "after": ["db"]},
                     bound={"binds_to": ["db"]}, db={}, side={"wants": ["db"]})
    plan = start_transaction(specs, ["top", "bound", "side"])
    assert plan.failed_dependants(["db"]) == {"mid", "bound"}
    assert plan.step("mid").hard == {"db"} and plan.step("side").soft == {"db"}


# --- conflicts ----------------------------------------------------------------------------

def test_conflicts_are_stopped_whoever_declared_them():
    specs = specs_of(stable={}, exp={"conflicts": ["stable"]})
    assert start_transaction(specs, ["exp"]).to_stop == ("stable",)
    assert start_transaction(specs, ["stable"]).to_stop == ("exp",)
    assert start_transaction(specs, ["stable"]).step("stable").conflicts == {"exp"}


def test_conflicts_of_pulled_in_processes_are_stopped_too():
    specs = specs_of(app={"requires": ["exp"]}, exp={}, stable={"conflicts": ["exp"]})
    assert start_transaction(specs, ["app"]).to_stop == ("stable",)


def test_starting_two_conflicting_targets_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        start_transaction(specs_of(a={"conflicts": ["b"]}, b={}), ["a", "b"])


def test_dependency_conflicting_with_its_dependant_is_config_error():
    specs = specs_of(a={"requires": ["b"]}, b={"conflicts": ["a"]})
    with pytest.raises(errors.ConfigError) as info:
        start_transaction(specs, ["a"])
    assert info.value.details["conflict"] == ["a", "b"]


# --- boot ---------------------------------------------------------------------------------

def test_boot_plan_starts_auto_start_processes_and_their_dependencies():
    specs = specs_of(agent={"auto_start": True, "requires": ["db"], "after": ["db"]},
                     db={}, manual={})
    assert boot_plan(specs).order == ("db", "agent")


def test_boot_plan_with_nothing_to_start_is_empty():
    assert boot_plan(specs_of(a={})).order == ()


# --- stopping -----------------------------------------------------------------------------

def test_stop_propagates_to_requires_binds_to_and_part_of_dependants_only():
    specs = specs_of(db={}, r={"requires": ["db"]}, b={"binds_to": ["db"]},
                     p={"part_of": ["db"]}, w={"wants": ["db"]}, o={"after": ["db"]})
    plan = stop_transaction(specs, ["db"], active=set(specs))
    assert set(plan.order) == {"db", "r", "b", "p"}
    assert plan.step("r").cause == ("db", "requires")
    assert plan.step("db").cause is None


def test_stop_propagates_transitively_through_inactive_processes():
    specs = specs_of(db={}, mid={"requires": ["db"]}, top={"part_of": ["mid"]})
    plan = stop_transaction(specs, ["db"], active={"top"})
    assert plan.order == ("top",)
    assert plan.targets == ()


def test_stop_order_is_reverse_of_start_order():
    specs = specs_of(app={"requires": ["db"], "after": ["db"]}, db={})
    plan = stop_transaction(specs, ["db"], active={"app", "db"})
    assert plan.order == ("app", "db")
    assert plan.step("db").wait_for == {"app"}
    assert plan.layers == (("app",), ("db",))


def test_shutdown_stops_every_active_process_in_reverse_order():
    specs = specs_of(a={}, b={"after": ["a"]}, c={"after": ["b"]}, idle={})
    assert shutdown_plan(specs, {"a", "b", "c", "removed"}).order == ("c", "b", "a")


def test_only_binds_to_reacts_to_an_unexpected_stop():
    specs = specs_of(main={}, trace={"binds_to": ["main"]}, helper={"binds_to": ["trace"]},
                     r={"requires": ["main"]}, p={"part_of": ["main"]}, idle={"binds_to": ["main"]})
    assert on_unexpected_stop(specs, "main", active={"trace", "helper", "r", "p"}) == [
        "helper", "trace"]


def test_part_of_dependants_restart_with_it_in_start_order():
    specs = specs_of(api={}, worker={"part_of": ["api"], "after": ["sidecar"]},
                     sidecar={"part_of": ["worker"]}, r={"requires": ["api"]})
    assert restart_propagation(specs, "api") == ["sidecar", "worker"]


# --- dependency trees ---------------------------------------------------------------------

def test_dependencies_tree_names_each_directive():
    specs = specs_of(api={"requires": ["db"], "after": ["db"], "wants": ["cache"]},
                     db={"requires": ["disk"]}, cache={}, disk={}, m={"before": ["api"]})
    tree = dependencies(specs, "api")
    by_name = {c.name: c for c in tree.children}
    assert by_name["db"].directives == ("requires", "after")
    assert by_name["cache"].directives == ("wants",)
    assert by_name["m"].directives == ("after",)
    assert [c.name for c in by_name["db"].children] == ["disk"]


def test_dependants_tree_is_the_reverse_view():
    specs = specs_of(db={}, api={"requires": ["db"]}, web={"binds_to": ["api"]}, x={"after": ["db"]})
    tree = dependants(specs, "db")
    assert tree.to_dict() == {
        "name": "db", "directives": [], "repeated": False, "missing": False, "children": [
            {"name": "api", "directives": ["requires"], "repeated": False, "missing": False,
             "children": [{"name": "web", "directives": ["binds_to"], "repeated": False,
                           "missing": False, "children": []}]},
            {"name": "x", "directives": ["after"], "repeated": False, "missing": False,
             "children": []}]}


def test_dependency_cycles_and_missing_names_do_not_loop_the_tree():
    specs = specs_of(a={"requires": ["b"]}, b={"requires": ["a", "ghost"]})
    tree = dependencies(specs, "a")
    b = tree.children[0]
    assert [(c.name, c.repeated, c.missing) for c in b.children] == [
        ("a", True, False), ("ghost", False, True)]


# --- supervision groups -------------------------------------------------------------------

GROUP = ("a", "b", "c", "d")


@pytest.mark.parametrize(("strategy", "stop", "start"), [
    ("one_for_one", ["b"], ["b"]),
    ("one_for_all", ["d", "c", "b", "a"], ["a", "b", "c", "d"]),
    ("rest_for_one", ["d", "c", "b"], ["b", "c", "d"]),
])
def test_group_strategy_decides_who_restarts(strategy, stop, start):
    group = GroupSpec(name="g", members=GROUP, strategy=strategy)
    assert group_restart_set(group, "b") == (stop, start)


def test_group_restart_of_a_non_member_is_process_not_found():
    with pytest.raises(errors.ProcessNotFound):
        group_restart_set(GroupSpec(name="g", members=GROUP), "zz")


def test_restart_intensity_escalates_past_max_restarts_within_window():
    budget = RestartIntensity(max_restarts=3, max_seconds=5.0)
    assert [budget.record(t) for t in (0.0, 1.0, 2.0)] == [False, False, False]
    assert budget.record(3.0) is True


def test_restart_intensity_forgets_restarts_older_than_the_window():
    budget = RestartIntensity.for_group(GroupSpec(name="g", max_restarts=2, max_seconds=5.0))
    assert not budget.record(0.0) and not budget.record(1.0)
    assert budget.record(5.0) is False
    assert budget.restarts_in_window(5.0) == 2


def test_restart_intensity_reset_clears_the_window():
    budget = RestartIntensity(max_restarts=1, max_seconds=10.0)
    budget.record(0.0)
    budget.reset()
    assert budget.record(1.0) is False


# --- properties ---------------------------------------------------------------------------

@st.composite
def dag_specs(draw, max_nodes: int = 9):
    """Random specs whose ordering graph is a DAG; also random pull-in edges."""
    n = draw(st.integers(1, max_nodes))
    names = draw(st.permutations([f"p{i}" for i in range(n)]))
    fields = {name: {"after": [], "before": [], "requires": [], "wants": [], "binds_to": [],
                     "part_of": [], "conflicts": []} for name in names}
    rank = {name: i for i, name in enumerate(names)}
    pairs = [(a, b) for a in names for b in names if rank[a] < rank[b]]
    for a, b in draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []:
        if draw(st.booleans()):
            fields[b]["after"].append(a)
        else:
            fields[a]["before"].append(b)
    for name in names:
        others = [o for o in names if o != name]
        if others:
            directive = draw(st.sampled_from(["requires", "wants", "binds_to", "part_of"]))
            fields[name][directive] = draw(st.lists(st.sampled_from(others), max_size=2,
                                                    unique=True))
    return specs_of(**fields)


def _edge_pairs(specs):
    return {(a, b) for a, thens in ordering_edges(specs).items() for b in thens}


@settings(max_examples=100, deadline=None)
@given(dag_specs())
def test_start_order_and_wait_for_respect_every_ordering_edge(specs):
    plan = start_transaction(specs, list(specs))
    position = {name: i for i, name in enumerate(plan.order)}
    layer_of = {n: i for i, layer in enumerate(plan.layers) for n in layer}
    assert sorted(plan.order) == sorted(specs)
    for first, then in _edge_pairs(specs):
        assert position[first] < position[then]
        assert first in plan.step(then).wait_for
        assert layer_of[first] < layer_of[then]
    for step in plan.steps:
        assert step.wait_for <= {a for a, b in _edge_pairs(specs) if b == step.name}


@settings(max_examples=100, deadline=None)
@given(dag_specs(), st.data())
def test_transaction_is_the_pull_in_closure_of_its_targets(specs, data):
    targets = data.draw(st.lists(st.sampled_from(sorted(specs)), min_size=1, unique=True))
    closure, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            spec = specs[name]
            todo.extend(spec.requires + spec.wants + spec.binds_to)
    plan = start_transaction(specs, targets)
    assert set(plan.order) == closure
    for step in plan.steps:
        assert step.wait_for <= closure


@settings(max_examples=100, deadline=None)
@given(dag_specs(), st.data())
def test_stop_order_is_the_reverse_of_the_ordering_edges(specs, data):
    active = set(data.draw(st.lists(st.sampled_from(sorted(specs)), unique=True)))
    plan = shutdown_plan(specs, active)
    position = {name: i for i, name in enumerate(plan.order)}
    assert set(plan.order) == active
    for first, then in _edge_pairs(specs):
        if first in active and then in active:
            assert position[then] < position[first]
            assert then in plan.step(first).wait_for


@settings(max_examples=100, deadline=None)
@given(dag_specs(), st.data())
def test_planted_cycle_is_found_and_is_a_real_cycle(specs, data):
    names = sorted(specs)
    ring = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names),
                              unique=True))
    planted = dict(specs)
    for first, then in zip(ring, ring[1:] + ring[:1]):
        spec = planted[then]
        planted[then] = replace(spec, after=spec.after + (first,))
    cycle = find_ordering_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    edges = _edge_pairs(planted)
    assert all(pair in edges for pair in zip(cycle, cycle[1:]))
    with pytest.raises(errors.ConfigError) as info:
        start_transaction(planted, names)
    assert all(pair in edges for pair in zip(info.value.details["cycle"],
                                              info.value.details["cycle"][1:]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde")), max_size=8))
def test_conflicts_are_symmetric(declared):
    fields = {n: {"conflicts": []} for n in "abcde"}
    for a, b in declared:
        fields[a]["conflicts"].append(b)
    specs = specs_of(**fields)
    for a in "abcde":
        for b in "abcde":
            assert (b in conflicting(specs, a)) == (a in conflicting(specs, b))
            if a != b and ((a, b) in declared or (b, a) in declared):
                assert b in start_transaction(specs, [a]).to_stop


def test_dependency_index_sees_who_stands_alone():
    from trio_procmgr.planner import DependencyIndex

    specs = {
        "db": parse_process("db", {"command": "true"}),
        "api": parse_process("api", {"command": "true", "requires": ["db"]}),
        "cache": parse_process("cache", {"command": "true"}),
        "exp": parse_process("exp", {"command": "true", "conflicts": ["cache"]}),
        "lone": parse_process("lone", {"command": "true"}),
    }
    index = DependencyIndex(specs)
    assert index.starts_alone("lone") and index.stops_alone("lone")
    assert index.starts_alone("db") and not index.stops_alone("db")  # api requires db
    assert not index.starts_alone("api") and index.stops_alone("api")
    assert not index.starts_alone("cache")  # exp conflicts with it (declared on the other side)
    assert index.dependants("db", ("requires",)) == {"api"}
