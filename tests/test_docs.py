"""The docs must not drift from the code: the CLI reference, config comments, examples."""

import importlib.util
import re
from pathlib import Path

from voxelflex.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "tools" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), (
        "docs/cli.md is stale: run `python tools/cli_reference.py`"
    )


def test_default_config_comments_list_the_registered_names():
    """The packaged YAML documents each choice key with the registry's (or constant's) names."""
    from voxelflex.config import choices

    text = (ROOT / "voxelflex" / "default_config.yaml").read_text()
    for key in ("loader.source", "model.name", "model.preset", "model.conditioning"):
        section, name = key.split(".")
        block = text.split(f"\n{section}:")[1]
        comment = re.search(rf"\n  {name}: \S+\s+# ([^\n]*)", block)[1]
        assert comment.startswith(" | ".join(choices(key))), (key, comment)
    comment = re.search(r"\n  rmsf_unit: \S+\s+# ([^\n]*)", text)[1]
    assert comment.startswith(" | ".join(choices("data.rmsf_unit")))


def test_training_docs_list_every_architecture_hyperparameter_with_its_preset_values():
    """docs/training.md's table of model.hyperparameters matches each trunk's PRESETS."""
    from voxelflex.registry import ARCHITECTURES

    text = (ROOT / "docs" / "training.md").read_text()
    table = text.split("| architecture | hyperparameter | tiny | small | base |")[1]
    documented, current = {}, None
    for line in table.split("\n\n")[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        current = cells[0].strip("`") or current
        name = re.match(r"`(\w+)`", cells[1])[1]
        documented[(current, name)] = cells[2:5]
    expected = {}
    for arch in ARCHITECTURES:
        presets = ARCHITECTURES.get(arch).PRESETS
        for name in presets["tiny"]:
            expected[(arch, name)] = [
                str(list(v) if isinstance(v, tuple) else v)
                for v in (presets[p][name] for p in ("tiny", "small", "base"))
            ]
    assert documented == expected


def test_example_configs_load_and_the_real_set_one_is_the_chosen_variant():
    """Each config in docs/examples/ is accepted by load_config; the real-structure example is
    exactly the configuration chosen on the real set's validation split."""
    spec = importlib.util.spec_from_file_location(
        "experiment", ROOT / "tools" / "real_set" / "experiment.py"
    )
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    examples = sorted((ROOT / "docs" / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        load_config(path)
    chosen = load_config(
        None, [*experiment.BASE, *experiment.VARIANTS[experiment.CHOSEN], "loader.seed=0"]
    )
    example = load_config(ROOT / "docs" / "examples" / "real_structures.yaml")
    assert example.model == chosen.model
    for key in ("lr", "weight_decay", "epochs", "target_norm", "monitor"):
        assert getattr(example.train, key) == getattr(chosen.train, key), key
    assert example.train.early_stopping_patience == chosen.train.early_stopping_patience


def test_analysis_docs_list_every_missing_report_reason():
    """docs/analysis.md's table of `_missing.csv` reasons names each of MISSING_REASONS."""
    from voxelflex.analysis.missing import MISSING_REASONS

    text = (ROOT / "docs" / "analysis.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", text.split("_missing.csv`", 1)[1], re.M))
    assert set(MISSING_REASONS) <= listed, set(MISSING_REASONS) - listed


def test_architecture_docs_place_every_module():
    """docs/architecture.md names each package's files in that package's row of "Who owns each
    step", and each top-level module among the base modules of "Layers"."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "voxelflex"
    rows = {}
    for line in text.split("## Who owns each step")[1].split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        folder = re.match(r"`voxelflex/(\w+)/", cells[1]) if len(cells) == 3 else None
        if folder:  # `voxelflex/sources/` and `voxelflex/sources/plan.py` both count
            rows[folder[1]] = rows.get(folder[1], "") + cells[1] + cells[2]
    base = text.split("base modules (")[1].split("```")[0]
    unplaced = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        if len(rel.parts) == 1:
            if not re.search(rf"\b{path.stem}\b", base):
                unplaced.append(str(rel))
        elif not re.search(rf"[`/]{path.name}`", rows.get(rel.parts[0], "")):
            unplaced.append(str(rel))
    assert not unplaced, f"modules docs/architecture.md does not place: {unplaced}"


def test_formats_docs_list_exactly_the_skip_reasons():
    """docs/formats.md's table of skip-table reasons is SKIP_REASONS, no more, no fewer."""
    from voxelflex.index.skips import SKIP_REASONS

    text = (ROOT / "docs" / "formats.md").read_text()
    table = text.split("| reason | meaning | indexed? |")[1].split("\n\n")[0]
    listed = re.findall(r"^\s*\| `(\w+)` \|", table, re.M)
    assert sorted(listed) == sorted(SKIP_REASONS)


def test_structures_docs_list_exactly_the_voxelizer_skip_reasons():
    """docs/structures.md's table of the voxelizer's skip reasons is its SKIP_REASONS."""
    from voxelflex.structure.frames import SKIP_REASONS

    text = (ROOT / "docs" / "structures.md").read_text()
    table = text.split("| reason | what was not written |")[1].split("\n\n")[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert listed == list(SKIP_REASONS)


def test_analysis_docs_list_exactly_the_prediction_columns():
    """docs/analysis.md's table of prediction columns is the writer's COLUMN_DOCS."""
    from voxelflex.analysis.predictions import COLUMN_DOCS

    text = (ROOT / "docs" / "analysis.md").read_text()
    table = text.split("| column | type | meaning |")[1].split("\n\n")[0]
    listed = [
        name
        for line in table.splitlines()[2:]
        for name in re.findall(r"`(\w+)`", line.split("|")[1])
    ]
    assert listed == list(COLUMN_DOCS)


def test_mdcath_docs_list_exactly_the_import_reasons():
    """docs/mdcath.md's list of import report reasons is the importer's SKIP_REASONS."""
    from voxelflex.datasets.mdcath import SKIP_REASONS

    text = (ROOT / "docs" / "mdcath.md").read_text()
    paragraph = text.split("Report reasons:")[1].split("\n\n")[0]
    listed = re.findall(r"`(\w+)`", paragraph.split("(splits).")[0])
    assert set(listed) == set(SKIP_REASONS)


def test_features_docs_table_is_the_feature_specs():
    """docs/features.md's feature table gives each FeatureSpec's name, group, unit and
    definition word for word (the sidecar's footer carries the same text)."""
    from voxelflex.structure.features import FEATURES

    text = (ROOT / "docs" / "features.md").read_text()
    table = text.split("| name | group | unit | definition |")[1].split("\n\n")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    documented = [(r[0].strip("`"), r[1].strip("`"), r[2], r[3]) for r in rows]
    assert documented == [(f.name, f.group, f.unit, f.definition) for f in FEATURES]


def test_training_docs_parameter_counts_are_the_models():
    """docs/training.md's throughput table states each architecture × preset's parameter count."""
    from voxelflex.models import ModelSpec, build_model, parameter_counts

    text = (ROOT / "docs" / "training.md").read_text()
    table = text.split("| model | preset | parameters |")[1].split("\n\n")[0]
    for line in table.splitlines()[2:]:
        name, preset, count = (c.strip() for c in line.strip("|").split("|")[:3])
        model = build_model(ModelSpec(name, preset, "film"), temperature_range=(320.0, 450.0))
        assert parameter_counts(model)["total"] == int(count.replace(",", "")), (name, preset)


def test_structures_docs_public_api_signatures_name_every_parameter():
    """Each signature in docs/structures.md's "Public API" table names every parameter of the
    function voxelflex.structure exports under that name."""
    import inspect

    import voxelflex.structure as structure

    text = (ROOT / "docs" / "structures.md").read_text()
    table = text.split("## Public API")[1].split("\n\n")[1]
    for line in table.splitlines()[2:]:
        for sig in re.findall(r"`(\w+\([^`]*\))", line.split("|")[1]):
            name, documented = re.match(r"(\w+)\((.*)\)", sig.split(" -> ")[0]).groups()
            names = [p.split("=")[0].strip() for p in documented.split(",")]
            names = [n for n in names if n and n != "*"]
            actual = list(inspect.signature(getattr(structure, name)).parameters)
            assert names == actual, (name, names, actual)
