"""Every file in examples/ loads without a single issue (the README runs them)."""

from pathlib import Path

from trio_procmgr.config.loader import load_config_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_file_is_valid():
    config = load_config_dir(str(EXAMPLES))
    assert [str(i) for i in config.issues] == []
    yaml_files = [p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml")]
    assert yaml_files and len(config.files) >= len(yaml_files)


def test_examples_cover_several_restart_policies():
    config = load_config_dir(str(EXAMPLES))
    policies = {spec.restart for spec in config.processes.values()}
    assert {"always", "on-failure", "never"} <= policies
