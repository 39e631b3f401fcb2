"""The OpenAPI document matches what the app does: schemathesis drives the real app (in-process, ASGI)
over a real indexed folder with requests built from the document, on SQLite and PostgreSQL. Every
answer must be documented and match its schema, valid requests must be accepted, and none may be a
server error. Examples are drawn with a fixed seed and bounded in number."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.main import create_app
from models.encoder import Encoder
from tests.builders.apps import database_url, indexed_settings

EXAMPLES = 25  # per operation and generation mode


def failures_of(operation: schemathesis.APIOperation, mode: GenerationMode) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        # An upload's bytes must be a decodable image, which a schema cannot say: for uploads the
        # check that valid data is accepted is left out. Invalid data need not be rejected: the text
        # patterns the document states are deliberately stricter than the service's checks (a query
        # of only "é" is documented as invalid and still searched). Every other check applies to
        # every request.
        excluded = [negative_data_rejection]
        # Nor can a schema say that taken_after must not be later than taken_before (a 422 by design).
        both_bounds = isinstance(case.body, dict) and {"taken_after", "taken_before"} <= case.body.keys()
        if case.media_type == "multipart/form-data" or both_bounds:
            excluded.append(positive_data_acceptance)
        try:
            case.call_and_validate(excluded_checks=excluded)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is collected
            failures.append(f"{operation.label} ({mode.value}): {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:  # an operation without parameters has no invalid request to make
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_every_answer_is_documented_and_never_a_server_error(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    minilm_encoder: Encoder,
    database: str,
) -> None:
    """Every operation fuzzed against a real model and its real caption bank (annotate draws on it)."""
    encoder = minilm_encoder
    base = tmp_path_factory.mktemp("conformance")
    postgres = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    app = create_app(
        indexed_settings(base, encoder, database_url(database, base, postgres), count=4), encoder
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += failures_of(operation, mode)
    assert not failures, "\n\n".join(failures)
