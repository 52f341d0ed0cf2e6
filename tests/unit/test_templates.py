"""Templates and replicas as pure data (SPEC §16): substitution, expansion, loading."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.config import templates as tpl
from trio_procmgr.config.loader import load_config_dir
from trio_procmgr.planner import expand_instance_dependencies, start_transaction
from trio_procmgr.spec import ProcessSpec


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ substitution

def test_specifiers_become_instance_full_name_and_percent():
    assert tpl.substitute("%i|%n|100%%|%x", "web@8080", "8080") == "8080|web@8080|100%|%x"


def test_double_percent_before_i_stays_a_literal_percent_i():
    assert tpl.substitute("%%i", "w@a", "a") == "%i"


@given(st.text().filter(lambda s: "%" not in s))
def test_text_without_percent_is_unchanged(text):
    assert tpl.substitute(text, "w@a", "a") == text


def test_only_the_listed_fields_are_substituted():
    raw = {"command": "/srv/%i/bin", "args": ["--name", "%n"], "description": "50%% of %i",
           "env": {"PORT_%i": "80%i"}, "working_dir": "/srv/%i", "pidfile": "/run/%n.pid",
           "runtime_directory": ["w-%i"], "log": {"file": "/var/log/%n.log"},
           "health_check": {"type": "tcp", "tcp_address": "127.0.0.1:80%i"}}
    out = tpl.substitute_fields(raw, "w@7", "7")
    assert out["command"] == "/srv/7/bin" and out["args"] == ["--name", "w@7"]
    assert out["description"] == "50%% of %i"
    assert out["env"] == {"PORT_%i": "807"}  # keys are names, not templates
    assert out["working_dir"] == "/srv/7" and out["pidfile"] == "/run/w@7.pid"
    assert out["runtime_directory"] == ["w-7"] and out["log"] == {"file": "/var/log/w@7.log"}
    assert out["health_check"]["tcp_address"] == "127.0.0.1:807"
    assert raw["command"] == "/srv/%i/bin"  # the template itself is left alone


def test_instance_gets_its_drop_in_and_DD_PM_INSTANCE_unless_the_file_sets_it():
    template = tpl.make_template("w", {"command": "run", "env": {"A": "%i"}},
                                 dropins={"b": {"args": ["only-b-%i"]}})
    assert tpl.instance_raw(template, "a") == {"command": "run", "env": {"DD_PM_INSTANCE": "a", "A": "a"}}
    assert tpl.instance_raw(template, "b")["args"] == ["only-b-b"]
    fixed = tpl.make_template("w", {"command": "run", "env": {"DD_PM_INSTANCE": "x"}})
    assert tpl.instance_raw(fixed, "a")["env"]["DD_PM_INSTANCE"] == "x"


# ------------------------------------------------------------------ names and fields

def test_template_and_instance_names():
    assert tpl.template_base("worker@") == "worker"
    assert tpl.template_base("worker") is None and tpl.template_base("a@b@") is None
    assert tpl.split_instance("worker@a") == ("worker", "a")
    assert tpl.split_instance("worker@") is None and tpl.split_instance("worker") is None


def test_replicas_are_listed_in_numeric_order():
    names = ["q@10", "q@2", "q@1", "other@1", "q"]
    assert tpl.members_of("q", names) == ["q@1", "q@2", "q@10"]


def test_replicas_out_of_range_or_not_an_integer_are_refused():
    for bad in (0, -1, 1001, "3", True, 2.5):
        _, _, replicas, problems = tpl.split_template_fields({"replicas": bad}, is_template=False)
        assert replicas is None and problems and problems[0][0] == "replicas", bad


def test_instances_belong_to_templates_and_replicas_to_plain_processes():
    problems = tpl.split_template_fields({"instances": ["a"]}, is_template=False)[3]
    assert "template" in problems[0][1]
    problems = tpl.split_template_fields({"replicas": 2}, is_template=True)[3]
    assert "does not apply to a template" in problems[0][1]
    problems = tpl.split_template_fields({"instances": ["a", "a", "x@y", ""]}, is_template=True)[3]
    assert [p[1] for p in problems] == ["instance 'a' is listed twice", "invalid instance name 'x@y'",
                                        "invalid instance name ''"]


# ------------------------------------------------------------------ dependency expansion

def test_a_dependency_on_a_replica_set_means_every_instance():
    specs = {n: ProcessSpec(name=n, command="x") for n in ("q@1", "q@2", "q@3")}
    specs["app"] = ProcessSpec(name="app", command="x", requires=("q",), after=("q",))
    expanded = expand_instance_dependencies(specs)
    assert expanded["app"].requires == ("q@1", "q@2", "q@3") == expanded["app"].after
    plan = start_transaction(expanded, ["app"])
    assert plan.order[-1] == "app" and set(plan.order) == set(specs)


def test_a_real_process_name_is_never_expanded():
    specs = {n: ProcessSpec(name=n, command="x") for n in ("q", "q@1")}
    specs["app"] = ProcessSpec(name="app", command="x", requires=("q",))
    assert expand_instance_dependencies(specs)["app"].requires == ("q",)


# ------------------------------------------------------------------ loading a directory

def test_a_template_file_is_no_process_and_its_instances_are(tmp_path):
    write(tmp_path, "worker@.yaml", "command: sh\nargs: ['-c', 'echo %n']\ninstances: [a, b]\n")
    config = load_config_dir(tmp_path)
    assert config.issues == ()
    assert sorted(config.processes) == ["worker@a", "worker@b"]
    assert config.processes["worker@b"].args == ("-c", "echo worker@b")
    assert config.processes["worker@a"].env["DD_PM_INSTANCE"] == "a"
    assert config.templates["worker"].instances == ("a", "b")


def test_template_drop_ins_apply_to_all_and_instance_drop_ins_to_one(tmp_path):
    write(tmp_path, "worker@.yaml", "command: sh\ninstances: [a, b]\n")
    write(tmp_path, "worker@.yaml.d/10-all.yaml", "description: every worker\nrestart: always\n")
    write(tmp_path, "worker@b.yaml.d/10-b.yaml", "description: worker %i is special\n")
    config = load_config_dir(tmp_path)
    assert config.issues == ()
    assert config.processes["worker@a"].description == "every worker"
    assert config.processes["worker@b"].description == "worker %i is special"
    assert config.processes["worker@b"].restart == "always"


def test_replicas_expand_to_numbered_instances_and_one_means_a_plain_process(tmp_path):
    write(tmp_path, "q.yaml", "command: sleep\nargs: ['%i']\nreplicas: 3\n")
    write(tmp_path, "single.yaml", "command: sleep\nreplicas: 1\n")
    write(tmp_path, "app.yaml", "command: sleep\nrequires: [q]\nafter: [q]\n")
    config = load_config_dir(tmp_path)
    assert config.issues == ()
    assert sorted(config.processes) == ["app", "q@1", "q@2", "q@3", "single"]
    assert config.processes["q@2"].args == ("2",)
    assert config.processes["q@3"].env["DD_PM_INSTANCE"] == "3"
    assert config.processes["app"].requires == ("q",)  # expanded when planning, not frozen


def test_bad_template_fields_are_reported_once_with_file_and_field(tmp_path):
    write(tmp_path, "worker@.yaml", "command: sh\nrestart: sometimes\ninstances: [a, b, c]\n")
    write(tmp_path, "q.yaml", "command: sh\nreplicas: 0\n")
    write(tmp_path, "ok.yaml", "command: sh\n")
    config = load_config_dir(tmp_path)
    assert list(config.processes) == ["ok"]
    restart = [i for i in config.issues if i.field == "restart"]
    assert len(restart) == 1 and restart[0].file.endswith("worker@.yaml") and restart[0].line == 2
    replicas = [i for i in config.issues if i.field == "replicas"]
    assert len(replicas) == 1 and replicas[0].file.endswith("q.yaml") and "1 to 1000" in replicas[0].expected


def test_a_drop_in_for_an_unknown_instance_template_is_still_an_error(tmp_path):
    write(tmp_path, "ok.yaml", "command: sh\n")
    write(tmp_path, "nothing@a.yaml.d/x.yaml", "description: x\n")
    config = load_config_dir(tmp_path)
    assert any("unknown process 'nothing@a'" in i.message for i in config.issues)


def test_watching_a_set_name_shows_the_events_of_its_instances():
    from trio_procmgr.events import EventHub

    hub = EventHub()
    sub = hub.subscribe(processes=["q"])
    assert [sub.matches({"type": "x", "process": n}) for n in ("q@1", "q", "other", "qq@1", None)] == \
        [True, True, False, False, False]
