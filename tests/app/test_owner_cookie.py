"""What the owner cookie may hold: only an id of the form the server makes (token_hex(16))."""

import secrets

import pytest

from deeparch.engine.manager import TEACHER
from pages._shared import OWNER_FORM


@pytest.mark.parametrize(
    "value",
    [TEACHER, "", "a" * 31, "a" * 33, "A" * 32, "../" + "a" * 29, "a" * 32 + "\n", "g" * 32],
)
def test_a_cookie_that_is_not_a_server_made_owner_id_is_ignored(value):
    assert OWNER_FORM.fullmatch(value) is None


def test_the_server_makes_owner_ids_of_128_random_bits_that_the_cookie_accepts():
    owners = {secrets.token_hex(16) for _ in range(100)}
    assert len(owners) == 100 and all(OWNER_FORM.fullmatch(owner) for owner in owners)
    assert all(len(bytes.fromhex(owner)) == 16 for owner in owners)
