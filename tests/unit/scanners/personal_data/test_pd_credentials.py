import pytest

from relay.findings import Confidence

from pd_helpers import find, types

GH = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"


@pytest.mark.parametrize("text,type_", [
    ("password: hunter2!", "password"), ("pwd=Tr0ub4dor&3", "password"), ("my password is Xk9#mLq2", "password"),
    ("Username: jsmith\nPassword: S3cret-Pass", "password"), ("passcode: 739154", "password"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "private_key"), ("-----BEGIN PRIVATE KEY-----", "private_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key"),
    (f"token {GH}", "api_token"), ("AKIAZ7Q4M2N8P6R3T5VX", "api_token"),
    ("xoxb-123456789012-abcdefghijklmnopqrstuvwx", "api_token"), ("sk_live_" + "a1B2c3D4e5F6g7H8i9J0k1L2", "api_token"),
    ("api_key = 8f3Kd92LmQ7zX1pR4tY6wB0nV5sC2hJ9", "api_token"), ('"client_secret": "Zq8Lw3Nf6Rt1Yp4Hs7Kd0Mv2"', "api_token"),
])
def test_secrets_found(text, type_):
    assert types(text).get(f"credential:{type_}") == Confidence.HIGH


@pytest.mark.parametrize("text", [
    "Your password: ********", "password: <password>", "password is required", "The password is incorrect.",
    "Password: (sent separately)", "Reset your password here.", "passwords must be 12 characters",
    "AKIAIOSFODNN7EXAMPLE", "api_key = your-api-key-goes-here-xxxx", "token: aaaaaaaaaaaaaaaaaaaaaaaa",
    "-----BEGIN PUBLIC KEY-----", "the secret: sauce", "sk_test_a1B2c3D4e5F6g7H8i9J0k1L2",
    "my password is blue",
])
def test_not_secrets(text):
    assert not any(k.startswith("credential") for k in types(text))


def test_evidence_never_shows_the_secret():
    for text, raw in (("password: hunter2!", "hunter2"), (f"token {GH}", GH[4:]),
                      ("api_key = 8f3Kd92LmQ7zX1pR4tY6wB0nV5sC2hJ9", "8f3Kd92L")):
        (f,) = find(text)
        assert raw not in f.evidence


def test_dash_separated_password_and_protected_is_not():
    assert types("Password - Summer2024!")["credential:password"] == Confidence.HIGH
    assert "credential:password" not in types("a password-protected file")
