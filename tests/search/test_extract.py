"""The searchable text of a message, by msg_type (search/extract.py): a pure function."""
from messaging.schemas import BUILT_IN_TYPES
from search.extract import MARK_END, MARK_START, MAX_CHARS, PROSE_FIELDS, message_text

ID = "8c1f3a52-3c1e-4a8e-9d7e-6b5e8c0f4a11"


def test_every_built_in_type_says_which_fields_are_prose():
    assert set(PROSE_FIELDS) == set(BUILT_IN_TYPES)


def test_prose_fields_of_each_built_in_type():
    assert message_text("text", {"text": "Hello there"}) == "Hello there"
    assert message_text("narration", {"text": "The sea rose."}) == "The sea rose."
    assert message_text("scene_plan", {"title": "Storm", "beats": ["The lamp fails", "A ship"]}) == \
        "Storm\nThe lamp fails\nA ship"
    assert message_text("dialogue", {"character": "Mara", "line": "Hold fast!", "direction": "shouting"}) == \
        "Mara\nHold fast!\nshouting"
    assert message_text("dialogue", {"character": "Mara", "line": "Hold fast!"}) == "Mara\nHold fast!"
    assert message_text("task_update", {"task": "Draft scene 2", "status": "working", "progress": 0.5}) == \
        "Draft scene 2\nworking"
    assert message_text("vote", {"proposal": ID, "choice": "yes"}) == "yes"


def test_ids_numbers_and_extra_keys_of_built_in_types_are_not_text():
    assert message_text("feedback", {"text": "Tighter", "target": ID, "rating": 4, "meta": "hidden"}) == "Tighter"
    assert message_text("decision", {"text": "We go north", "proposal": ID}) == "We go north"
    assert ID not in message_text("vote", {"proposal": ID, "choice": "no"})


def test_other_types_give_every_string_value_in_order():
    payload = {"title": "Map", "n": 3, "flag": True, "items": ["north", {"deep": "cave"}, 7], "none": None}
    assert message_text("my.type", payload) == "Map\nnorth\ncave"


def test_a_non_object_payload_or_wrong_field_types_give_nothing():
    assert message_text("text", []) == ""
    assert message_text("text", {"text": 5}) == ""
    assert message_text("scene_plan", {"title": None, "beats": [1, "kept", {"x": "not"}]}) == "kept"


def test_the_text_is_bounded_in_length_and_depth():
    assert len(message_text("blob", {"a": "x" * (MAX_CHARS + 50), "b": "more"})) == MAX_CHARS
    nested = "deepest"
    for _ in range(100):
        nested = {"k": nested}
    assert message_text("blob", {"shallow": "top", "n": nested}) == "top"
    many = {"items": ["word"] * 100_000}
    assert len(message_text("blob", many)) <= MAX_CHARS


def test_highlight_markers_and_nul_never_reach_the_index():
    text = message_text("text", {"text": f"a{MARK_START}b{MARK_END}c\x00d"})
    assert text == "a b c d"
