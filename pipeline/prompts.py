"""Speech-task prompts, shared by stage-2 training and inference so both see the same layout.

A request is rendered with the LLM's own chat template around an audio placeholder; the token ids
before and after the placeholder surround the audio tokens::

    <|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n[AUDIO TOKENS]\nTranscribe the audio.<|im_end|>\n<|im_start|>assistant\n

The system prompt is explicit: without one SmolLM2's template inserts its own ("You are a helpful AI
assistant named SmolLM, trained by Hugging Face"), which pulls untrained students towards introducing
themselves. The text before the audio is the same for every task, so stage 1 (which runs
``[before][audio]`` only) computes exactly the audio states stage 2 and inference compute: text after the
audio cannot change them (it is causal).

Usage::

    >>> before, after = prompt_ids(tokenizer, "Transcribe the audio.")      # doctest: +SKIP
    >>> answer = answer_ids(tokenizer, "hello world")                       # doctest: +SKIP
"""

from __future__ import annotations

AUDIO_PLACEHOLDER = "<<AUDIO>>"
SYSTEM_PROMPT = "You listen to speech and answer in text."
TASK_INSTRUCTIONS = {
    "transcribe": "Transcribe the audio.",
    "spoken_qa": "Answer the question asked in the audio with a single word.",
}


def instruction_for(task: str | None) -> str:
    return TASK_INSTRUCTIONS.get(task or "transcribe", TASK_INSTRUCTIONS["transcribe"])


def task_of_instruction(instruction: str) -> str:
    """``transcribe`` for the transcription prompt, else ``spoken_qa`` (any other request about the audio).

    >>> task_of_instruction("Transcribe the audio."), task_of_instruction("Who is speaking?")
    ('transcribe', 'spoken_qa')
    """
    return "transcribe" if instruction == TASK_INSTRUCTIONS["transcribe"] else "spoken_qa"


def text_prompt(transcript: str, instruction: str) -> str:
    """The user turn of a system that answers from text: AuRA's ``<audio>\\n{instruction}`` with the text for the audio.

    >>> text_prompt("What is the capital of Norway?", "Answer the question.")
    'What is the capital of Norway?\\nAnswer the question.'
    """
    return f"{transcript}\n{instruction}"


def prompt_ids(tokenizer, instruction: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the audio for a user turn ``<audio>\\n{instruction}`` under :data:`SYSTEM_PROMPT`."""
    content = f"{AUDIO_PLACEHOLDER}\n{instruction}"
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            tokenize=False, add_generation_prompt=True,
        )
    else:
        text = f"System: {SYSTEM_PROMPT}\nUser: {content}\nAssistant:"
    before, after = text.split(AUDIO_PLACEHOLDER)
    return (tokenizer(before, add_special_tokens=False)["input_ids"],
            tokenizer(after, add_special_tokens=False)["input_ids"])


def audio_prefix_ids(tokenizer) -> list[int]:
    """The token ids in front of the audio, the same for every task (what stage 1 runs before the audio)."""
    return prompt_ids(tokenizer, instruction_for("transcribe"))[0]


def answer_ids(tokenizer, answer: str) -> list[int]:
    """The target ids of an answer, closed by the end-of-turn token the chat template uses."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id]


def spoken_text(row: dict) -> str:
    """What is said in a manifest row's clip: its transcript, or the question a spoken-QA clip asks.

    >>> spoken_text({"task": "spoken_qa", "question": "What is the capital of Norway?", "answer": "Oslo"})
    'What is the capital of Norway?'
    """
    return str(row.get("text") or row.get("question") or "")


def target_for(row: dict) -> str:
    """What the model should answer for a manifest row."""
    if (row.get("task") or "transcribe") == "spoken_qa" and row.get("answer"):
        return str(row["answer"])
    return str(row.get("text") or "")
