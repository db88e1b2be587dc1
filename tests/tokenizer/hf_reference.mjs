// Reference ids from HF's tokenizers.js (npm @huggingface/tokenizers): a bert-base-uncased
// tokenizer.json assembled from vocab.txt, run on every line of a file.
//   node hf_reference.mjs TOKENIZERS_DIR VOCAB_TXT LINES_IN IDS_OUT
// Lines end at "\n"; a "\r" before it is dropped; malformed UTF-8 reads as U+FFFD (WHATWG decoding).
// Writes "[CLS] ids [SEP]" per line, space-separated.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [dir, vocabPath, linesPath, outPath] = process.argv.slice(2);
if (!outPath) {
    console.error("usage: node hf_reference.mjs TOKENIZERS_DIR VOCAB_TXT LINES_IN IDS_OUT");
    process.exit(2);
}
const { Tokenizer } = await import(pathToFileURL(path.join(dir, "dist", "tokenizers.mjs")).href);

const vocab = {};
fs.readFileSync(vocabPath, "utf8").split("\n").forEach((tok, i, all) => {
    if (i < all.length - 1 || tok !== "") vocab[tok.replace(/\r$/, "")] = i;
});
const special = (content) => ({
    id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false,
    special: true,
});
const cls = vocab["[CLS]"], sep = vocab["[SEP]"];
const tokenizerJson = {
    version: "1.0",
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(special),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null,
                  lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
                 { SpecialToken: { id: "[SEP]", type_id: 0 } }],
        pair: [],
        special_tokens: { "[CLS]": { id: "[CLS]", ids: [cls], tokens: ["[CLS]"] },
                          "[SEP]": { id: "[SEP]", ids: [sep], tokens: ["[SEP]"] } },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##",
             max_input_chars_per_word: 100, vocab },
};
const tokenizer = new Tokenizer(tokenizerJson, { do_lower_case: true, model_max_length: 512 });

const raw = fs.readFileSync(linesPath);
const decoder = new TextDecoder("utf-8", { fatal: false });
const out = [];
let start = 0;
while (start < raw.length) {
    let end = raw.indexOf(0x0a, start);
    if (end < 0) end = raw.length;
    let stop = end;
    if (stop > start && raw[stop - 1] === 0x0d) stop--;
    out.push(tokenizer.encode(decoder.decode(raw.subarray(start, stop))).ids.join(" "));
    start = end + 1;
}
fs.writeFileSync(outPath, out.map((l) => l + "\n").join(""));
