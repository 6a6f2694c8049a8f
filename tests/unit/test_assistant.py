"""The assistant's files and its choice of reply: template, knowledge base, hand-over."""

import numpy as np
import pytest

from fulcrum.assistant.content import fill, read_answers, read_knowledge_base, slots
from fulcrum.assistant.reply import HANDOVER, KNOWLEDGE_BASE, TEMPLATE, Assistant
from fulcrum.errors import DataError
from fulcrum.recipe import validate_recipe


def test_answers_from_yaml_and_csv_are_checked_against_the_labels(tmp_path):
    yaml_file = tmp_path / "answers.yaml"
    yaml_file.write_text("card_lost: 'Hello {name}, your card ending {last4} is blocked.'\n")
    assert read_answers(yaml_file, ["card_lost", "balance"]) == {
        "card_lost": "Hello {name}, your card ending {last4} is blocked."
    }
    csv_file = tmp_path / "answers.csv"
    csv_file.write_text("intent,answer\nbalance,Your balance is in the app.\ncard_lots,typo\n")
    with pytest.raises(DataError, match=r"answers.csv: intent 'card_lots' is not one of"):
        read_answers(csv_file, ["card_lost", "balance"])
    csv_file.write_text("intent,answer\nbalance,\n")
    with pytest.raises(DataError, match=r"answers.csv, row 2: field `answer` is missing"):
        read_answers(csv_file)


def test_a_template_names_plain_slots_and_keeps_the_missing_ones_visible():
    assert slots("Hi {name}, card {last4}", "x") == ["name", "last4"]
    with pytest.raises(DataError, match=r"slot \{0\}"):
        slots("Hi {0}", "answers.yaml: intent 'a'")
    with pytest.raises(DataError, match="malformed"):
        slots("Hi {name", "answers.yaml: intent 'a'")
    assert fill("Hi {name}, card {last4}", {"name": "Ann"}) == ("Hi Ann, card {last4}", ["last4"])
    assert fill("Braces {{like this}}", {}) == ("Braces {like this}", [])


def test_knowledge_base_rows_are_pairs_or_passages(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(
        '{"question": "Can I pay by cheque?", "answer": "No, only transfers."}\n'
        "\n"
        '{"answer": "Branches open at nine."}\n'
    )
    first, second = read_knowledge_base(path)
    assert (first.matched, first.answer, first.row) == (
        "Can I pay by cheque?",
        "No, only transfers.",
        1,
    )
    assert (second.matched, second.question, second.row) == ("Branches open at nine.", None, 3)
    path.write_text('{"question": "Why?"}\n')
    with pytest.raises(DataError, match=r"kb.jsonl, row 1: no `answer`"):
        read_knowledge_base(path)


def test_the_recipe_needs_something_to_say():
    raw = {"name": "x", "data": {"path": "d.csv"}, "assistant": {}}
    with pytest.raises(Exception, match="name answers, knowledge_base, or both"):
        validate_recipe(raw)


class _Fixed(Assistant):
    """The reply logic over an in-memory knowledge base whose "embedder" is a lookup."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.settings = {"similarity_floor": 0.6, "top_k": 2, "handover": "A colleague will help."}
        self.answers = {"card_lost": "Your card {last4} is blocked."}
        self.entries = [
            {"question": "opening hours?", "answer": "Nine to five.", "row": 2},
            {"question": "pay by cheque?", "answer": "No.", "row": 3},
        ]
        self.vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
        self.lookup = vectors
        self.embedder = self

    def embed(self, texts):
        return np.array([self.lookup[text] for text in texts])


def test_each_reply_says_what_chose_it():
    assistant = _Fixed({"when open": [0.8, 0.6], "weather": [0.5, -0.5], "lost": [0.7, 0.7]})
    sure = {"label": "card_lost", "score": 0.97, "out_of_scope": False}
    templated = assistant.reply("lost", sure, {"last4": "1234"})
    assert (
        templated["chosen_by"] == TEMPLATE and templated["answer"] == "Your card 1234 is blocked."
    )
    assert templated["passages"] == [] and templated["missing_slots"] == []

    outside = {"label": "card_lost", "score": 0.41, "out_of_scope": True, "in_scope_score": 0.4}
    found = assistant.reply("when open", outside, {})
    assert found["chosen_by"] == KNOWLEDGE_BASE and found["answer"] == "Nine to five."
    assert found["intent"] is None and found["predicted_intent"] == "card_lost"
    assert [p["row"] for p in found["passages"]] == [2, 3]
    assert found["passages"][0]["score"] == pytest.approx(0.8)

    lost = assistant.reply("weather", outside, {})
    assert lost["chosen_by"] == HANDOVER and lost["answer"] == "A colleague will help."
    assert "0.50 < 0.6" in lost["reason"]

    # An intent without a template falls through to the knowledge base, not to a guess.
    untemplated = assistant.reply("when open", {"label": "balance", "score": 0.99}, {})
    assert untemplated["chosen_by"] == KNOWLEDGE_BASE
    assert "intent 'balance' has no template" in untemplated["reason"]
