"""The published event contract (docs/asyncapi.json) is generated from the code and kept current."""
from events.asyncapi import DOCUMENT_PATH, build_document, render
from events.catalogue import CATALOGUE


def test_committed_document_is_what_the_code_generates():
    committed = DOCUMENT_PATH.read_text() if DOCUMENT_PATH.exists() else ""
    assert committed == render(), (
        "docs/asyncapi.json is stale: the event catalogue changed. "
        "Regenerate it with `python -m events.asyncapi` and commit it."
    )


def test_every_event_has_a_channel_whose_address_is_its_subject():
    document = build_document()
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == set(CATALOGUE)
    for name, event in CATALOGUE.items():
        id_field = f"{event.aggregate}_id"
        sample = event.model_construct(**{id_field: "0f1e"})
        address = document["channels"][name]["address"]
        assert address.format(root="cadenza", **{id_field: "0f1e"}) == sample.subject("cadenza")


def test_every_reference_in_the_document_resolves():
    document = build_document()

    def resolve(ref: str) -> object:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def walk(node: object) -> int:
        count = 0
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
                count += 1
            count += sum(walk(value) for value in node.values())
        elif isinstance(node, list):
            count += sum(walk(value) for value in node)
        return count

    assert walk(document) > len(CATALOGUE) * 3


def test_a_message_schema_describes_the_envelope_around_the_event():
    schemas = build_document()["components"]["schemas"]
    envelope = schemas["AdapterSavedEnvelope"]
    assert envelope["properties"]["type"] == {"const": "AdapterSaved", "type": "string"}
    assert envelope["properties"]["payload"] == {"$ref": "#/components/schemas/AdapterSaved"}
    assert schemas["AdapterSaved"]["properties"]["adapter"] == {"$ref": "#/components/schemas/ObjectRef"}
    assert "sha256" in schemas["ObjectRef"]["required"]
