"""Chat tokenizer of a model folder: tokenizer.json through `tokenizers`, the chat template through jinja2.

The template is the Jinja string `chat_template` of tokenizer_config.json (or the file chat_template.jinja),
rendered the way transformers renders it (sandboxed, trim_blocks, lstrip_blocks, `raise_exception`, `tojson`). Per docs/CONTRACTS.md the generation prompt
ends with `<think>\\n`: if a model's template does not open the thinking block itself, `render_chat` appends it.
A model whose thinking markers are other tokens names them in tokenizer_config.json as `think_start` / `think_end`
(model import writes them; src/engine/tokenizer.ts reads the same keys).
"""

import json
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from softgrpo.model import ModelFolderError

THINK_START, THINK_END = "<think>", "</think>"


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def _token_text(value) -> str | None:
    """tokenizer_config.json writes special tokens either as strings or as {"content": ...} objects."""
    return value.get("content") if isinstance(value, dict) else value


class ChatTokenizer:
    def __init__(self, tokenizer: Tokenizer, config: dict):
        if not config.get("chat_template"):
            raise ModelFolderError("tokenizer_config.json: missing chat_template")
        if isinstance(config["chat_template"], list):  # [{name, template}...] in some repos
            by_name = {t["name"]: t["template"] for t in config["chat_template"]}
            config = dict(config, chat_template=by_name.get("default") or next(iter(by_name.values())))
        self.tokenizer = tokenizer
        self.config = config
        self.template = _compile_template(config["chat_template"])
        self.eos_token = _token_text(config.get("eos_token"))
        self.bos_token = _token_text(config.get("bos_token"))
        self.pad_token = _token_text(config.get("pad_token")) or self.eos_token
        if not self.eos_token:
            raise ModelFolderError("tokenizer_config.json: missing eos_token")
        self.eos_id = self.token_id(self.eos_token)
        self.pad_id = self.token_id(self.pad_token)
        self.think_start = _token_text(config.get("think_start")) or THINK_START
        self.think_end = _token_text(config.get("think_end")) or THINK_END
        self.think_start_id = self.token_id(self.think_start)
        self.think_end_id = self.token_id(self.think_end)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "ChatTokenizer":
        folder = Path(folder)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if not (folder / name).is_file():
                raise ModelFolderError(f"model folder {str(folder)!r} has no {name}")
        config = json.loads((folder / "tokenizer_config.json").read_text())
        if not config.get("chat_template") and (folder / "chat_template.jinja").is_file():
            # transformers >= 4.43 may save the template beside tokenizer_config.json instead of inside it
            config["chat_template"] = (folder / "chat_template.jinja").read_text()
        return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), config)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int:
        """Id of a single (special) token; a clear error if the vocabulary lacks it."""
        tid = self.tokenizer.token_to_id(token)
        if tid is None:
            raise ModelFolderError(f"tokenizer.json: no single token {token!r} in the vocabulary")
        return tid

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Chat template text; with add_generation_prompt it ends with `<think>\\n`."""
        text = self.template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token,
        )
        if add_generation_prompt and not text.endswith(self.think_start + "\n"):
            text = text + self.think_start + "\n"
        return text

    def encode(self, text: str) -> list[int]:
        """Plain text -> ids (special tokens written in the text are recognised; nothing is added)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.render_chat(messages, add_generation_prompt))

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one generated token stands for (logprobs): a byte-level piece mapped back exactly, an added
        token as its UTF-8 text, any other token as the UTF-8 of its decoded text. Mirrors ChatTokenizer.tokenBytes
        of src/engine/tokenizer.ts."""
        added = self.tokenizer.get_added_tokens_decoder()
        piece = self.tokenizer.id_to_token(token_id) or ""
        if token_id in added:
            return piece.encode()
        if self._byte_level:
            exact = [_BYTE_OF_CHAR.get(ch) for ch in piece]
            if None not in exact:
                return bytes(exact)
        return self.tokenizer.decode([token_id], skip_special_tokens=False).encode()

    @property
    def _byte_level(self) -> bool:
        if not hasattr(self, "_byte_level_cached"):
            decoder = json.loads(self.tokenizer.to_str()).get("decoder") or {}
            kinds = [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders") or []]
            self._byte_level_cached = "ByteLevel" in kinds
        return self._byte_level_cached


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet (char -> byte): printable bytes stand for themselves, the rest for 256, 257, ...
    in byte order. Mirrors src/engine/byte-level.ts."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, shifted = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + shifted)] = b
            shifted += 1
    return chars


_BYTE_OF_CHAR = _byte_alphabet()
