"""The package exports exactly its documented surface."""

import cep_engine


def test_all_is_explicit_and_importable() -> None:
    assert sorted(cep_engine.__all__) == sorted(
        ["CepError", "ConfigError", "ConflictError", "InvalidInput", "NotFound",
         "PermissionDenied", "Role", "TransitionRefused", "__version__"]
    )
    for name in cep_engine.__all__:
        assert getattr(cep_engine, name) is not None


def test_every_error_has_a_distinct_documented_exit_code() -> None:
    errors = [getattr(cep_engine, n) for n in cep_engine.__all__ if n.endswith(("Error",
              "Input", "Found", "Denied", "Refused"))]
    assert all(issubclass(e, cep_engine.CepError) for e in errors)
    doc = cep_engine.errors.__doc__ or ""
    for err in errors:
        assert err.__name__ in doc
        assert f"exit {err.exit_code}" in doc.split(err.__name__, 1)[1].splitlines()[0]
