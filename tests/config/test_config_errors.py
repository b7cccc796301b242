# ruff: noqa: E501  -- each expected message stays on one line, as the user sees it
"""The exact text of validation errors for broken bodywork.yaml files: every problem at once, each as
``<dotted.path> -> <message>`` naming the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import ConfigError, load_pipeline, parse_pipeline_yaml
from runner.model import BatchSettings, ServiceSettings, Stage

from .helpers import VALID, replace

BROKEN = [
    pytest.param(
        'version: "1.1"\npipeline:\n  name: demo\n  docker_image: img\n  DAG: a\n',
        [
            "stages -> missing section; add stages: with the settings of every stage in the DAG",
            "logging -> missing section; add logging: with log_level: INFO",
        ],
        id="missing sections",
    ),
    pytest.param(
        replace(
            "pipeline:\n  name: demo\n  docker_image: bodyworkml/bodywork-core:3.0\n  DAG: prepare >> train, score\n",
            "",
        ),
        [
            "pipeline -> missing section; add it with name, docker_image and DAG",
        ],
        id="missing pipeline",
    ),
    pytest.param(
        replace(
            "pipeline:\n  name: demo\n  docker_image: bodyworkml/bodywork-core:3.0\n  DAG: prepare >> train, score\n",
            "pipeline: demo\n",
        ),
        [
            'pipeline -> must be a mapping of settings, got "demo" (line 2)',
        ],
        id="pipeline not a mapping",
    ),
    pytest.param(
        replace("    cpu_request: 1\n    memory_request_mb: 200\n", ""),
        [
            "stages.train.cpu_request -> missing; add it, e.g. cpu_request: 0.5",
            "stages.train.memory_request_mb -> missing; add it, e.g. memory_request_mb: 100",
        ],
        id="missing required fields",
    ),
    pytest.param(
        replace(
            "retries: 2",
            'retries: "three"',
            replace(
                "cpu_request: 0.5",
                "cpu_request: lots",
                replace(
                    "port: 5000", "port: 70000", replace("ingress: true", "ingress: sometimes")
                ),
            ),
        ),
        [
            'stages.prepare.cpu_request -> must be a number >= 0 (CPU cores, e.g. 0.5), got "lots" (line 11)',
            'stages.prepare.batch.retries -> must be an integer >= 0, got "three" (line 15)',
            "stages.score.service.port -> must be an integer from 1 to 65535, got 70000 (a number) (line 33)",
            'stages.score.service.ingress -> must be true or false, got "sometimes" (line 34)',
        ],
        id="wrong types",
    ),
    pytest.param(
        replace(
            "memory_request_mb: 200",
            "memory_request_mb: -5",
            replace("replicas: 2", "replicas: 1.5"),
        ),
        [
            "stages.train.memory_request_mb -> must be an integer >= 0, got -5 (a number) (line 19)",
            "stages.score.service.replicas -> must be an integer >= 0, got 1.5 (a number) (line 32)",
        ],
        id="negative and float integers",
    ),
    pytest.param(
        replace("retries: 0", 'retries: "0"'),
        [
            'stages.train.batch.retries -> must be an integer >= 0, got "0"; write it without quotes (line 22)',
        ],
        id="quoted integer",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", "DAG: prepare >> trian, score"),
        [
            'pipeline.DAG -> names stage "trian", which is not configured under stages:; did you mean "train"? (line 5)',
        ],
        id="dag unknown stage",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", "DAG: prepare >> >> score"),
        [
            "pipeline.DAG -> step 2 is empty; separate steps with '>>' and the stages of one step with ',', e.g. \"prepare >> train_a, train_b >> serve\" (line 5)",
        ],
        id="dag empty step",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", "DAG: prepare >> train,, score"),
        [
            "pipeline.DAG -> step 2 ('train,,score') has an empty stage name; separate steps with '>>' and the stages of one step with ',', e.g. \"prepare >> train_a, train_b >> serve\" (line 5)",
        ],
        id="dag empty stage",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", "DAG: prepare >> train >> prepare"),
        [
            "pipeline.DAG -> step 3: stage 'prepare' appears more than once; a stage runs once per workflow, remove the repeat (line 5)",
        ],
        id="dag repeated stage",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", "DAG: [prepare, train]"),
        [
            "pipeline.DAG -> must be a non-empty string, got a list (line 5)",
        ],
        id="dag not a string",
    ),
    pytest.param(
        replace("DAG: prepare >> train, score", 'DAG: ""'),
        [
            'pipeline.DAG -> must be a non-empty string, got "" (line 5)',
        ],
        id="empty dag",
    ),
    pytest.param(
        replace(
            "  docker_image: bodyworkml/bodywork-core:3.0\n",
            "  docker_image: bodyworkml/bodywork-core:3.0\n  secrets-group: dev\n",
        ),
        [
            'pipeline.secrets-group -> unknown key; did you mean "secrets_group"? (line 5)',
        ],
        id="unknown key with hint",
    ),
    pytest.param(
        replace("logging:\n  log_level: INFO\n", "logging:\n  log_level: INFO\n  colour: blue\n"),
        [
            "logging.colour -> unknown key; expected one of: log_level (line 37)",
        ],
        id="unknown key without hint",
    ),
    pytest.param(
        replace(
            "    cpu_request: 0.25\n",
            "    cpu_requests: 0.25\n",
            replace("executable_module_path: train/main.py", "executable_script: train/main.py"),
        ),
        [
            'stages.train.executable_script -> unknown key; did you mean "executable_module_path"? (line 17)',
            "stages.train.executable_module_path -> missing; add it, e.g. executable_module_path: stage_1/main.py",
            'stages.score.cpu_requests -> unknown key; did you mean "cpu_request"? (line 26)',
            "stages.score.cpu_request -> missing; add it, e.g. cpu_request: 0.5",
        ],
        id="stage misspelt keys",
    ),
    pytest.param(
        replace('version: "1.1"', "version: true"),
        [
            'version -> must be the string "1.1", got true (a boolean); write version: "1.1" (with the quotes) (line 1)',
        ],
        id="boolean version",
    ),
    pytest.param(
        replace('version: "1.1"', 'version: "2.0"'),
        [
            'version -> unknown schema version "2.0"; this loader reads "1.1" (Bodywork 3) and the older "1.0": write version: "1.1" and check the file against docs/bodywork-yaml.md (line 1)',
        ],
        id="unknown version",
    ),
    pytest.param(
        replace('version: "1.1"\n', ""),
        [
            'version -> missing; add version: "1.1" at the top of the file',
        ],
        id="missing version",
    ),
    pytest.param(
        replace("pipeline:\n", "project:\n"),
        [
            'pipeline -> missing section; this file has project:, the schema "1.0" name: rename project: to pipeline: (or set version: "1.0")',
        ],
        id="half migrated",
    ),
    pytest.param(
        replace('version: "1.1"', 'version: "1.0"'),
        [
            'project -> missing section; schema "1.0" calls it project:, and this file has pipeline:, the schema "1.1" name: set version: "1.1"',
        ],
        id="1.0 with pipeline",
    ),
    pytest.param(
        replace(
            "    batch:\n      max_completion_time_seconds: 600\n      retries: 0\n",
            "    batch:\n      max_completion_time_seconds: 600\n      retries: 0\n    service:\n      max_startup_time_seconds: 1\n      replicas: 1\n      port: 80\n      ingress: false\n",
        ),
        [
            "stages.train -> has both batch: and service:; a stage is one or the other, remove one (line 16)",
        ],
        id="both batch and service",
    ),
    pytest.param(
        replace("    batch:\n      max_completion_time_seconds: 600\n      retries: 0\n", ""),
        [
            "stages.train -> needs a batch: or a service: section (exactly one); add e.g. batch: {max_completion_time_seconds: 60, retries: 2} (line 16)",
        ],
        id="neither batch nor service",
    ),
    pytest.param(
        replace(
            "executable_module_path: train/main.py", "executable_module_path: ../../etc/evil.py"
        ),
        [
            "stages.train.executable_module_path -> \"../../etc/evil.py\" leaves the repository; give a path relative to the folder holding bodywork.yaml, without '..' (line 17)",
        ],
        id="module escapes",
    ),
    pytest.param(
        replace("executable_module_path: train/main.py", "executable_module_path: /etc/evil.py"),
        [
            "stages.train.executable_module_path -> \"/etc/evil.py\" leaves the repository; give a path relative to the folder holding bodywork.yaml, without '..' (line 17)",
        ],
        id="module absolute",
    ),
    pytest.param(
        replace("executable_module_path: train/main.py", "executable_module_path: train/main.sh"),
        [
            'stages.train.executable_module_path -> must name a .py or .ipynb file, got "train/main.sh" (line 17)',
        ],
        id="module not python",
    ),
    pytest.param(
        replace('args: ["--port", "5000"]', 'args: ["--port", 5000, true]'),
        [
            'stages.score.args[1] -> must be a string, got 5000 (a number); quote it: "5000" (line 25)',
            'stages.score.args[2] -> must be a string, got true (a boolean); quote it: "true" (line 25)',
        ],
        id="args not strings",
    ),
    pytest.param(
        replace("    requirements:\n      - pandas==1.4.2\n", "    requirements: pandas==1.4.2\n"),
        [
            'stages.prepare.requirements -> must be a list of strings, got "pandas==1.4.2" (line 9)',
        ],
        id="requirements not a list",
    ),
    pytest.param(
        replace("    requirements:\n      - pandas==1.4.2\n", "    requirements:\n"),
        [
            "stages.prepare.requirements -> is empty; list the items under it (- item), or remove the key (line 9)",
        ],
        id="empty requirements",
    ),
    pytest.param(
        replace("API_KEY: api-credentials", "1API: api credentials"),
        [
            "stages.score.secrets.1API -> is not an environment variable name (letters, digits and '_', not starting with a digit) (line 29)",
        ],
        id="bad secrets",
    ),
    pytest.param(
        replace("log_level: INFO", "log_level: info"),
        [
            'logging.log_level -> must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got "info"; write INFO (line 36)',
        ],
        id="bad log level",
    ),
    pytest.param(
        replace("name: demo", "name: my demo"),
        [
            "pipeline.name -> must be letters, digits, '-' and '.', got \"my demo\" (line 3)",
        ],
        id="bad name",
    ),
    pytest.param(
        replace(
            "  DAG: prepare >> train, score\n",
            "  DAG: prepare >> train, score\n  run_on_failure: notify\n",
        ),
        [
            'pipeline.run_on_failure -> names stage "notify", which is not configured under stages: (line 6)',
        ],
        id="run_on_failure unknown",
    ),
    pytest.param(
        replace(
            "  DAG: prepare >> train, score\n",
            "  DAG: prepare >> train, score\n  run_on_failure: score\n",
        ),
        [
            'pipeline.run_on_failure -> stage "score" is a service; the stage run on failure must be a batch stage (line 6)',
        ],
        id="run_on_failure service",
    ),
    pytest.param(
        replace(
            "  DAG: prepare >> train, score\n",
            "  DAG: prepare >> train, score\n  namespace: My_Space\n",
        ),
        [
            "pipeline.namespace -> must be a Kubernetes namespace: lowercase letters, digits and '-', at most 63 characters, got \"My_Space\" (line 6)",
        ],
        id="bad namespace",
    ),
    pytest.param(
        replace(
            "  train:\n    executable_module_path: train/main.py\n    cpu_request: 1\n    memory_request_mb: 200\n    batch:\n      max_completion_time_seconds: 600\n      retries: 0\n",
            "  train:\n",
        ),
        [
            "stages.train -> must be a mapping of stage settings, got nothing (null) (line 16)",
        ],
        id="empty stage",
    ),
    pytest.param(
        replace("stages:\n", "stages: {}\nunused:\n"),
        [
            "unused -> unknown key; expected one of: version, pipeline, stages, logging (line 7)",
            "stages -> must be a mapping of stage names to stage settings, got an empty mapping (line 6)",
        ],
        id="no stages",
    ),
    pytest.param(
        replace("    cpu_request: 1\n", "    cpu_request: 1\n    cpu_request: 2\n"),
        [
            "stages.train.cpu_request -> appears twice in one mapping (again at line 19); YAML keeps only the last, remove one (line 18)",
        ],
        id="duplicate key",
    ),
    pytest.param(
        replace("  name: demo\n", "  name: demo: x\n"),
        [
            "bodywork.yaml -> YAML syntax error at line 3, column 13: mapping values are not allowed here; check the indentation, and quote values that hold ': ' or start with a special character",
        ],
        id="syntax error",
    ),
    pytest.param(
        replace("  DAG: prepare >> train, score\n", " DAG: prepare >> train, score\n"),
        [
            "bodywork.yaml -> YAML syntax error at line 5, column 2: expected <block end>, but found '<block mapping start>' (while parsing a block mapping at line 1, column 1); check the indentation, and quote values that hold ': ' or start with a special character",
        ],
        id="bad indentation",
    ),
    pytest.param(
        replace("  name: demo\n", "\tname: demo\n"),
        [
            "bodywork.yaml -> YAML syntax error at line 3, column 1: found character '\\t' that cannot start any token; indent with spaces, not tabs",
        ],
        id="tab",
    ),
    pytest.param(
        "- version: 1.1\n- pipeline\n",
        [
            "bodywork.yaml -> the top level must be a mapping with the sections version, pipeline, stages and logging; got a list",
        ],
        id="top-level list",
    ),
    pytest.param(
        "hello\n",
        [
            'bodywork.yaml -> the top level must be a mapping with the sections version, pipeline, stages and logging; got "hello"',
        ],
        id="top-level string",
    ),
    pytest.param(
        "",
        [
            "bodywork.yaml -> the top level must be a mapping with the sections version, pipeline, stages and logging; got an empty file",
        ],
        id="empty file",
    ),
    pytest.param(
        "# nothing here\n",
        [
            "bodywork.yaml -> the top level must be a mapping with the sections version, pipeline, stages and logging; got an empty file",
        ],
        id="only comments",
    ),
    pytest.param(
        "a: &a [*a]\n",
        [
            "bodywork.yaml -> line 1: a YAML alias refers to a value that contains itself",
        ],
        id="recursive alias",
    ),
    pytest.param(
        "base: &b {x: 1}\nother:\n  <<: *b\n",
        [
            "bodywork.yaml -> line 3, column 3: YAML merge keys (<<) are not supported; write the keys out in full",
        ],
        id="merge key",
    ),
    pytest.param(
        "version: !!python/object/apply:os.system ['echo hi']\n",
        [
            "bodywork.yaml -> line 1, column 10: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not supported here; remove it",
        ],
        id="python tag",
    ),
    pytest.param(
        "version: !custom 1.1\n",
        [
            "bodywork.yaml -> line 1, column 10: the YAML tag '!custom' is not supported here; remove it",
        ],
        id="custom tag",
    ),
    pytest.param(
        "version: !!timestamp 2021-13-45\n",
        [
            "bodywork.yaml -> line 1, column 10: '2021-13-45' cannot be read as a timestamp (month must be in 1..12); quote it to make it a string",
        ],
        id="bad timestamp",
    ),
    pytest.param(
        VALID + "---\nversion: x\n",
        [
            "bodywork.yaml -> YAML syntax error at line 37, column 1: expected a single document in the stream, but found another document; a bodywork.yaml holds one document: remove the second '---' and what follows",
        ],
        id="two documents",
    ),
    pytest.param(
        'version: "1.1"\x00\n',
        [
            "bodywork.yaml -> line 1, column 15: unacceptable character #x0000 (binary data?); a bodywork.yaml is plain UTF-8 text",
        ],
        id="nul byte",
    ),
    pytest.param(
        replace(
            "  train:\n", "  1:\n", replace("DAG: prepare >> train, score", "DAG: prepare >> score")
        ),
        [
            "stages.1 -> a stage name must be letters, digits, '-', '_' and '.', not starting with '-' or '.'; got 1 (a number) (line 16)",
        ],
        id="non-string stage name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_every_problem_is_reported_with_its_exact_text(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml(text)
    assert caught.value.problems == expected
    assert caught.value.source == "bodywork.yaml"


def test_a_module_path_escaping_the_repository_names_the_stage_and_the_fix() -> None:
    text = replace("executable_module_path: train/main.py", "executable_module_path: ../../etc")
    text = replace("DAG: prepare >> train, score", "DAG: prepare >> train, score >> ..", text)
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml(text)
    assert caught.value.problems == [
        "pipeline.DAG -> step 3: '..' is not a stage name (letters, digits, '-', '_' and '.', not starting with '-' or '.'); separate steps with '>>' and stages with ',', e.g. \"prepare >> train_a, train_b >> serve\" (line 5)",
        "stages.train.executable_module_path -> \"../../etc\" leaves the repository; give a path relative to the folder holding bodywork.yaml, without '..' (line 17)",
    ]


def test_valid_file_loads_into_the_model() -> None:
    pipeline = parse_pipeline_yaml(VALID)
    assert pipeline.name == "demo"
    assert pipeline.version == "1.1"
    assert pipeline.steps == (("prepare",), ("train", "score"))
    assert list(pipeline.stages) == ["prepare", "train", "score"]
    assert pipeline.stages["train"] == Stage(
        name="train",
        executable_module_path="train/main.py",
        cpu_request=1.0,
        memory_request_mb=200,
        batch=BatchSettings(max_completion_time_seconds=600, retries=0),
    )
    score = pipeline.stages["score"]
    assert score.args == ("--port", "5000")
    assert score.secrets == (("API_KEY", "api-credentials"),)
    assert score.service == ServiceSettings(
        max_startup_time_seconds=60, replicas=2, port=5000, ingress=True
    )
    assert pipeline.stages["prepare"].requirements == ("pandas==1.4.2",)
    assert pipeline.notices == ()


def test_unquoted_version_is_accepted_with_a_notice() -> None:
    pipeline = parse_pipeline_yaml(replace('version: "1.1"', "version: 1.1"))
    assert pipeline.notices == (
        'version -> 1.1 is not quoted, so YAML reads it as a number; write version: "1.1" (line 1)',
    )


def test_schema_1_0_loads_with_a_notice() -> None:
    text = replace("pipeline:\n", "project:\n", replace('version: "1.1"', 'version: "1.0"'))
    pipeline = parse_pipeline_yaml(text)
    assert pipeline == parse_pipeline_yaml(VALID)
    assert pipeline.source_schema == "1.0"
    assert pipeline.notices == (
        'version -> schema "1.0" (the `project:` section of Bodywork 2.x) is the older schema; it '
        'loads unchanged, but run `bodywork migrate` to rewrite the file as schema "1.1"',
    )


def test_quirks_of_real_files_are_accepted() -> None:
    text = replace("DAG: prepare >> train, score", "DAG: prepare>>train,score", VALID)
    text = replace(
        "    cpu_request: 1\n", "    # a comment inside a stage\n    cpu_request: 1\n", text
    )
    text = replace(
        "      - pandas==1.4.2\n",
        "      - pandas==1.4.2\n      - git+https://github.com/bodywork-ml/bodywork-pipeline-utils@v0.1.5\n",
        text,
    )
    pipeline = parse_pipeline_yaml(text.rstrip("\n"))  # no final newline either
    assert pipeline.steps == (("prepare",), ("train", "score"))
    assert pipeline.stages["train"].cpu_request == 1.0
    assert pipeline.stages["prepare"].requirements[-1].endswith("@v0.1.5")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml("\n".join(lines))
    assert caught.value.problems == [
        "bodywork.yaml -> line 1: the document expands to more than 20,000 values (through YAML "
        "aliases?); a bodywork.yaml needs far fewer"
    ]


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml("a: " + "[" * 5000 + "]" * 5000)
    assert len(caught.value.problems) == 1
    assert "nested more than" in caught.value.problems[0]


def test_huge_text_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml("# " + "x" * 1_000_000)
    assert caught.value.problems == [
        "bodywork.yaml -> the file has 1,000,002 characters, more than the 1,000,000 allowed; "
        "is this the right file?"
    ]


def test_error_text_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yaml").write_text(replace("log_level: INFO", "log_level: LOUD"))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path)
    assert str(caught.value) == (
        "bodywork.yaml has 1 problem:\n"
        '  logging.log_level -> must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got "LOUD" '
        "(line 36)"
    )


def test_binary_garbage_file(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yaml").write_bytes(b"version: \xff\xfe\x00garbage")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path)
    assert caught.value.problems == [
        "bodywork.yaml -> is not UTF-8 text (byte 0xff at offset 9); a bodywork.yaml is plain "
        "text, is this the right file?"
    ]


def test_huge_file(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yaml").write_bytes(b"#" * 2_000_000)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path)
    assert caught.value.problems == [
        "bodywork.yaml -> is 2.0 MB, a bodywork.yaml is at most 1 MB; is this the right file?"
    ]


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path} -> holds no bodywork.yaml (nor the older bodywork.ini); create one (see "
        "docs/bodywork-yaml.md) or pass the folder that holds it"
    ]


def test_check_files_names_missing_and_escaping_modules(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yaml").write_text(VALID)
    for folder in ("prepare", "score"):
        (tmp_path / folder).mkdir()
    (tmp_path / "prepare" / "main.py").write_text("")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.py"
    outside.write_text("")
    (tmp_path / "score" / "serve.py").symlink_to(outside)
    assert load_pipeline(tmp_path).name == "demo"  # files are checked only when asked
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path, check_files=True)
    assert caught.value.problems == [
        "stages.train.executable_module_path -> executable_module_path 'train/main.py' does not "
        "exist at this commit; add the file or correct the path in bodywork.yaml",
        "stages.score.executable_module_path -> executable_module_path 'score/serve.py' resolves "
        "outside the repository (through a symbolic link); point it at a file inside the repository",
    ]


def test_a_yml_file_and_a_file_path_are_found(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yml").write_text(VALID)
    assert load_pipeline(tmp_path).name == "demo"
    (tmp_path / "other.yaml").write_text(VALID)
    assert load_pipeline(tmp_path / "other.yaml").name == "demo"
