"""The key format: generation, checksum, well-formedness. No database."""

import math
import re
import zlib

from apikeys import keys


def test_generated_key_matches_the_documented_format():
    key = keys.generate()
    assert len(key) == keys.KEY_LENGTH == 52
    assert re.fullmatch(keys.KEY_REGEX, key)
    assert re.fullmatch(r"sk_[0-9A-Za-z]{49}", key)
    assert keys.is_well_formed(key)


def test_random_part_carries_at_least_256_bits():
    assert keys.RANDOM_LENGTH >= 40
    assert keys.RANDOM_LENGTH * math.log2(len(keys.ALPHABET)) >= 256
    generated = {keys.generate() for _ in range(2000)}
    assert len(generated) == 2000
    # Every alphabet character turns up: the generator is not stuck on a subset.
    assert set("".join(k[3:-6] for k in generated)) == set(keys.ALPHABET)


def test_checksum_is_crc32_of_the_random_part_in_base62():
    key = keys.generate()
    random_part, check = key[3:-6], key[-6:]
    value = 0
    for char in check:
        value = value * 62 + keys.ALPHABET.index(char)
    assert value == zlib.crc32(random_part.encode())


def test_every_single_character_typo_is_caught_by_the_checksum():
    key = keys.generate()
    for position in range(3, len(key)):
        for replacement in "0aZ":
            if key[position] == replacement:
                continue
            typo = key[:position] + replacement + key[position + 1 :]
            assert not keys.is_well_formed(typo), (position, replacement)


def test_malformed_candidates_are_rejected():
    key = keys.generate()
    for candidate in [
        "",
        "sk_",
        key[:-1],  # truncated
        key + "0",  # too long
        "pk_" + key[3:],
        key[:10] + "-" + key[11:],
        key[:10] + "é" + key[11:],
        "sk_" + "a" * 10_240,
        key.upper() if key.upper() != key else key.lower(),
    ]:
        assert not keys.is_well_formed(candidate), candidate


def test_hash_is_sha256_hex_and_prefix_is_the_start_of_the_key():
    key = keys.generate()
    assert re.fullmatch(r"[0-9a-f]{64}", keys.hash_key(key))
    assert keys.hash_key(key) != keys.hash_key(keys.generate())
    assert keys.display_prefix(key) == key[:11] and key.startswith(keys.display_prefix(key))
