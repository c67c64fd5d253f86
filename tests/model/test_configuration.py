import pytest
from transformers import GPT2Config, LlamaConfig

from modeling_elm import ElmConfig


def test_defaults_filled_from_the_language_model():
    config = ElmConfig(text_config=LlamaConfig(hidden_size=64), embedding_spaces={"movie": {"dim": 384}})
    movie = config.embedding_spaces["movie"]
    assert movie == {
        "dim": 384,
        "placeholder": "<movie>",
        "placeholder_token_id": None,
        "num_tokens": 1,
        "adapter_hidden_size": 64,
        "adapter_hidden_act": "gelu",
    }
    assert config.tie_word_embeddings == LlamaConfig().tie_word_embeddings


def test_text_config_dict_resolved_by_model_type_and_round_trips(tmp_path):
    config = ElmConfig(
        text_config={"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 4},
        embedding_spaces={"movie": {"dim": 8, "num_tokens": 3}, "user": {"dim": 4, "placeholder": "[U]"}},
    )
    assert isinstance(config.text_config, GPT2Config)
    config.save_pretrained(tmp_path)
    again = ElmConfig.from_pretrained(tmp_path)
    assert again.embedding_spaces == config.embedding_spaces
    assert again.text_config.to_dict() == config.text_config.to_dict()


@pytest.mark.parametrize(
    "spaces, message",
    [
        (None, "at least one embedding space"),
        ({}, "at least one embedding space"),
        ({"movie": {"dim": 0}}, "dim must be a positive integer"),
        ({"movie": {}}, "dim must be a positive integer"),
        ({"movie": {"dim": 8, "num_tokens": 0}}, "num_tokens must be a positive integer"),
        ({"movie": {"dim": 8.5}}, "dim must be a positive integer"),
        ({"movie": {"dim": 8, "size": 3}}, "unknown settings ['size']"),
        ({"movie": {"dim": 8, "adapter_hidden_act": "nope"}}, "unknown adapter_hidden_act 'nope'"),
        ({"movie": {"dim": 8}, "film": {"dim": 8, "placeholder": "<movie>"}}, "its own placeholder"),
        ({"two words": {"dim": 8}}, "plain identifier"),
        ({"movie": 384}, "must be a dict of settings"),
    ],
)
def test_bad_spaces_are_refused_with_a_message(spaces, message):
    with pytest.raises(ValueError) as error:
        ElmConfig(text_config=LlamaConfig(), embedding_spaces=spaces)
    assert message in str(error.value)
