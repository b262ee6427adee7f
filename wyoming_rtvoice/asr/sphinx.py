"""A second ear for the ASR's second chance: PocketSphinx's US-English
model, which errs apart from Whisper's.

It is asked which of the house's command sentences near what Whisper
heard the audio says, decoded with those sentences as its grammar. It
abstains (None) where it cannot say them all (a word its dictionary
lacks) or its best path ends inside no sentence. What Whisper heard is no
path of its grammar: as one, it won on 15 of the 26 misheard commands the
benchmark had candidates for, since Whisper's mishearings sound like what
was said ("guest nights then lamp"); Whisper's own score of what it heard
is the way out of the commands (`session.agreed`).

Optional: without the `pocketsphinx` wheel (none for some platforms) there
is no second ear, and the second chance works as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..house.matcher import number_words

_LOGGER = logging.getLogger(__name__)


def said_words(text: str) -> list[str]:
    """`text` as the words a dictionary holds: lowercase, numbers and "%"
    said out."""
    text = text.lower().replace("%", " percent ").replace("-", " ")
    words: list[str] = []
    for word in re.sub(r"[^\w\s']", " ", text).split():
        word = word.strip("'")
        if word.isdigit():
            words += number_words(int(word), "en").replace("-", " ").split()
        elif word:
            words.append(word)
    return words


class GrammarEar:
    """Which of a few sentences the audio says, by PocketSphinx. One
    decoder, on its own thread (it is not thread-safe)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sphinx")
        self._decoder: Any = None

    @classmethod
    def load(cls) -> GrammarEar | None:
        """The ear, or None (logged) where PocketSphinx is not installed.
        Blocking (loads the acoustic model)."""
        try:
            import pocketsphinx
        except ImportError:
            _LOGGER.info("pocketsphinx is not installed: no second ear")
            return None
        ear = cls()
        model = os.path.join(pocketsphinx.get_model_path(), "en-us")
        ear._decoder = pocketsphinx.Decoder(
            hmm=os.path.join(model, "en-us"),
            dict=os.path.join(model, "cmudict-en-us.dict"),
            lm=None,
            loglevel="FATAL",
        )
        return ear

    async def pick(self, audio: np.ndarray, texts: list[str]) -> int | None:
        """The index of the text the audio says, or None."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.choose, audio, texts)

    def choose(self, audio: np.ndarray, texts: list[str]) -> int | None:
        """Of texts[1:] (texts[0] is what Whisper heard)."""
        decoder = self._decoder
        sentences = [" ".join(said_words(text)) for text in texts[1:]]
        for sentence in sentences:
            for word in sentence.split():
                if decoder.lookup_word(word) is None:
                    return None
        if not all(sentences):
            return None
        alternatives = " | ".join(f"({s})" for s in dict.fromkeys(sentences))
        decoder.add_jsgf_string(
            "said", f"#JSGF V1.0;\ngrammar said;\npublic <said> = {alternatives};\n"
        )
        decoder.activate_search("said")
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None or hypothesis.hypstr not in sentences:
            return None
        return 1 + sentences.index(hypothesis.hypstr)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
