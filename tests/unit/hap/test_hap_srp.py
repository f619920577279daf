"""SRP-6a client math against published vectors and an independent plain-pow server."""

from __future__ import annotations

import hashlib

import pytest
from srptools.constants import PRIME_1024, PRIME_1024_GEN, PRIME_2048

from airplay_provider.protocol.hap.errors import ProtocolViolation
from airplay_provider.protocol.hap.srp import (
    HAP_GROUP,
    LEGACY_GROUP,
    SrpClient,
    SrpGroup,
    check_server_proof,
)

# Shared private values of RFC 5054 Appendix B and the HAP specification's SRP vector.
A_PRIVATE = bytes.fromhex("60975527035CF2AD1989806F0407210BC81EDC04E2762A56AFD529DDDA2D4393")
SALT = bytes.fromhex("BEB25379D1A8581EB5A727673A2441EE")

# HAP spec SRP test vector (3072-bit group, SHA-512, I = "alice", P = "password123").
HAP_A = (
    "FAB6F5D2615D1E323512E7991CC37443F487DA604CA8C9230FCB04E541DCE628"
    "0B27CA4680B0374F179DC3BDC7553FE62459798C701AD864A91390A28C93B644"
    "ADBF9C00745B942B79F9012A21B9B78782319D83A1F8362866FBD6F46BFC0DDB"
    "2E1AB6E4B45A9906B82E37F05D6F97F6A3EB6E182079759C4F6847837B62321A"
    "C1B4FA68641FCB4BB98DD697A0C73641385F4BAB25B793584CC39FC8D48D4BD8"
    "67A9A3C10F8EA12170268E34FE3BBE6FF89998D60DA2F3E4283CBEC1393D52AF"
    "724A57230C604E9FBCE583D7613E6BFFD67596AD121A8707EEC4694495703368"
    "6A155F644D5C5863B48F61BDBF19A53EAB6DAD0A186B8C152E5F5D8CAD4B0EF8"
    "AA4EA5008834C3CD342E5E0F167AD04592CD8BD279639398EF9E114DFAAAB919"
    "E14E850989224DDD98576D79385D2210902E9F9B1F2D86CFA47EE244635465F7"
    "1058421A0184BE51DD10CC9D079E6F1604E7AA9B7CF7883C7D4CE12B06EBE160"
    "81E23F27A231D18432D7D1BB55C28AE21FFCF005F57528D15A88881BB3BBB7FE"
)
HAP_B = (
    "40F57088A482D4C7733384FE0D301FDDCA9080AD7D4F6FDF09A01006C3CB6D56"
    "2E41639AE8FA21DE3B5DBA7585B275589BDB279863C562807B2B99083CD1429C"
    "DBE89E25BFBD7E3CAD3173B2E3C5A0B174DA6D5391E6A06E465F037A40062548"
    "39A56BF76DA84B1C94E0AE208576156FE5C140A4BA4FFC9E38C3B07B88845FC6"
    "F7DDDA93381FE0CA6084C4CD2D336E5451C464CCB6EC65E7D16E548A273E8262"
    "84AF2559B6264274215960FFF47BDD63D3AFF064D6137AF769661C9D4FEE4738"
    "2603C88EAA0980581D07758461B777E4356DDA5835198B51FEEA308D70F75450"
    "B71675C08C7D8302FD7539DD1FF2A11CB4258AA70D234436AA42B6A0615F3F91"
    "5D55CC3B966B2716B36E4D1A06CE5E5D2EA3BEE5A1270E8751DA45B60B997B0F"
    "FDB0F9962FEE4F03BEE780BA0A845B1D9271421783AE6601A61EA2E342E4F2E8"
    "BC935A409EAD19F221BD1B74E2964DD19FC845F60EFC09338B60B6B256D8CAC8"
    "89CCA306CC370A0B18C8B886E95DA0AF5235FEF4393020D2B7F3056904759042"
)
HAP_K = (
    "5CBC219DB052138EE1148C71CD4498963D682549CE91CA24F098468F06015BEB"
    "6AF245C2093F98C3651BCA83AB8CAB2B580BBF02184FEFDF26142F73DF95AC50"
)


def test_hap_spec_vector_public_key_and_session_key() -> None:
    client = SrpClient("alice", "password123", private_key=A_PRIVATE)
    assert client.public_key == bytes.fromhex(HAP_A)
    proof = client.process(SALT, bytes.fromhex(HAP_B))
    assert proof.session_key == bytes.fromhex(HAP_K)


def test_hap_pair_setup_proofs_match_third_party_vector() -> None:
    # Vector published by another HAP project (generated there with srptools).
    server_public = bytes.fromhex(
        "f10ea26e7f6729cf4ad84ee29797902444db19e43a4208f0228db31dbcebf1ce"
        "2599dd34db5527b459959d03def823ca34b26acebdcda6e5be266bda03434f41"
        "99709b44f9006319c8c9954440cfa8513a3efaf891ffe7e9a22d114a627ff876"
        "a169f8475f2338342ec9a22916ff13949848d2653bfbad782b99e2f0dbe5a6c5"
        "e698a3b895a426dc357c6986001b9023b0eb05a13c3b9ec04ee837ddfc12eef3"
        "536dab67ec1c47881eb87bbfbe7f010823d051d33e15c6e9138780395d4ecf10"
        "bf610e11a5b0e3ee8d122665feba6b17c9eba084a60d15aae69152b827b507ed"
        "e6d824237d8596a51e6355faf8727d5e67f91e60ac85feebdb852eeb61c9e6d1"
        "7a48d55d6bc815adfe03daec5b6bd8a3d28b8fe4bc78e452c2cd8aa89fedaf39"
        "252f4cb354c595c09fa2251078746482fba13daf27e156aabd18800efd97e472"
        "9b74217bc9611d54250422b00c0ade7bf0721c5f1b7d479c3c32d6d34b29d2fb"
        "e158ebe5ad9e9e40d997f755e919c77ad5be10300d55bbe921aee598d4dbfff3"
    )
    client = SrpClient("Pair-Setup", "123-45-678", private_key=A_PRIVATE)
    proof = client.process(SALT, server_public)
    assert proof.session_key.hex() == (
        "8d81d9699f88f80724b5ccea8af575afb9ec0e32a6986336a58e7697f8394b54"
        "1751f886a362c05e86cac223a522218b4c704635accacbff498b5a17e6baa3be"
    )
    assert proof.client_proof.hex() == (
        "5405c5ad299a761d8afe17c45383de84a46f6c0d437a29bd9476bf4b77dd79e7"
        "b95674a966498a3c5f98bf8c933f4baba9555765fc1ecc240eaeda3363a68d42"
    )
    assert proof.expected_server_proof.hex() == (
        "65623be9ae14a44abcee4951655103a51913c84dbd90eda6c386819bfe7d2b0d"
        "7603ce198b4c0b257dfec327bcf035cc0dacd7e47b79c585aec992af0490c61b"
    )


def test_rfc5054_appendix_b_with_sha1_1024() -> None:
    group = SrpGroup(PRIME_1024, PRIME_1024_GEN, hashlib.sha1, apple_legacy=False)
    client = SrpClient("alice", "password123", group=group, private_key=A_PRIVATE)
    assert client.public_key.hex().upper().startswith("61D5E490F6F1B79547B0704C436F523D")
    server_public = bytes.fromhex(
        "BD0C61512C692C0CB6D041FA01BB152D4916A1E77AF46AE105393011BAF38964DC46A067"
        "0DD125B95A981652236F99D9B681CBF87837EC996C6DA04453728610D0C6DDB58B318885"
        "D7D82C7F8DEB75CE7BD4FBAA37089E6F9C6059F388838E7A00030B331EB76840910440B1"
        "B27AAEAEEB4012B7D7665238A8E3FB004B117B58"
    )
    premaster = bytes.fromhex(
        "B0DC82BABCF30674AE450C0287745E7990A3381F63B387AAF271A10D233861E359B48220"
        "F7C4693C9AE12B0A6F67809F0876E2D013800D6C41BB59B6D5979B5C00A172B4A2A5903A"
        "0BDCAF8A709585EB2AFAFA8F3499B200210DCC1F10EB33943CD67FC88A2F39A4BE5BEC4E"
        "C0A3212DC346D7E474B29EDE8A469FFECA686E5A"
    )
    proof = client.process(SALT, server_public)
    assert proof.session_key == hashlib.sha1(premaster).digest()
    assert proof.client_proof.hex() == "3f3bc67169ea71302599cf1b0f5d408b7b65d347"
    assert proof.expected_server_proof.hex() == "9cab3c575a11de37d3ac1421a9f009236a48eb55"


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def test_legacy_variant_against_independent_plain_pow_server() -> None:
    n = int(PRIME_2048, 16)

    def pad(value: int) -> bytes:
        return value.to_bytes(256, "big")

    user, pin, salt, b = "0011223344556677", "1234", bytes(range(16)), 0x1234567890ABCDEF
    x = int.from_bytes(_sha1(salt, _sha1(f"{user}:{pin}".encode())), "big")
    v = pow(2, x, n)
    k = int.from_bytes(_sha1(pad(n), pad(2)), "big")
    server_public = (k * v + pow(2, b, n)) % n
    client = SrpClient(user, pin, group=LEGACY_GROUP, private_key=A_PRIVATE)
    a = int.from_bytes(client.public_key, "big")
    assert len(client.public_key) == 256
    u = int.from_bytes(_sha1(pad(a), pad(server_public)), "big")
    s = pow(a * pow(v, u, n), b, n).to_bytes(256, "big").lstrip(b"\x00")
    session_key = _sha1(s, b"\0\0\0\0") + _sha1(s, b"\0\0\0\1")
    group = bytes(p ^ q for p, q in zip(_sha1(pad(n)), _sha1(b"\x02"), strict=True))
    m1 = _sha1(group, _sha1(user.encode()), salt, pad(a), pad(server_public), session_key)

    proof = client.process(salt, pad(server_public))
    assert proof.session_key == session_key
    assert proof.client_proof == m1
    assert proof.expected_server_proof == _sha1(pad(a), m1, session_key)


@pytest.mark.parametrize("server_public", [b"", b"\x00", HAP_GROUP.modulus.to_bytes(384, "big")])
def test_degenerate_server_public_key_is_rejected(server_public: bytes) -> None:
    client = SrpClient("Pair-Setup", "3939")
    with pytest.raises(ProtocolViolation):
        client.process(SALT, server_public)


def test_wrong_server_proof_is_rejected() -> None:
    client = SrpClient("alice", "password123", private_key=A_PRIVATE)
    proof = client.process(SALT, bytes.fromhex(HAP_B))
    check_server_proof(proof, proof.expected_server_proof)
    with pytest.raises(ProtocolViolation):
        check_server_proof(proof, bytes(64))
