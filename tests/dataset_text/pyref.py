#!/usr/bin/python3
"""References for test_dataset_text, computed by CPython's own `random` (and scikit-learn).

Subcommands (SEED is a Python integer expression, e.g. 42, -7, "5+(3<<64)"):
  ops SEED OP...          OP is bK (getrandbits(K)), rN (_randbelow(N)) or f (random() as int(x * 2**53));
                          prints one result per line
  shuffle SEED N          prints random.shuffle(list(range(N))) after random.seed(SEED), space-separated
  sizes N0 N1             prints "n int(n*0.6) int(n*0.2)" for n in [N0, N1)
  gensplit PATH N SEED    writes an AvaMERG-layout train.json of N conversations to PATH (its own mess:
                          empty turns, unlabeled first turns, turn ids out of order), then prints the seed
                          split of it as three lines "train ID...", "test ID...", "val ID..."
  bow PATH                unigram bag-of-words logistic regression on a train.json (last turn's
                          utterances -> 7 classes), 5-fold; prints "accuracy majority"
"""
import json
import os
import random
import sys

LABEL7 = {
    "happy": "anticipating caring confident content excited faithful grateful hopeful joyful prepared proud trusting",
    "surprised": "devastated impressed surprised",
    "angry": "angry annoyed furious",
    "fear": "afraid apprehensive terrified",
    "sad": "anxious ashamed disappointed embarrassed guilty lonely nostalgic sad sentimental",
    "disgusted": "disgusted",
    "contempt": "jealous",
}
CLASSES = ["happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt"]
TO7 = {e: CLASSES.index(c) for c, names in LABEL7.items() for e in names.split()}


def cmd_ops(seed, *ops):
    r = random.Random()
    r.seed(eval(seed))
    for op in ops:
        if op[0] == "b":
            print(r.getrandbits(int(op[1:])))
        elif op[0] == "r":
            print(r._randbelow(int(op[1:])))
        elif op == "f":
            print(int(r.random() * 2**53))
        else:
            raise SystemExit("unknown op " + op)


def cmd_shuffle(seed, n):
    p = list(range(int(n)))
    random.seed(eval(seed))
    random.shuffle(p)
    print(" ".join(map(str, p)))


def cmd_sizes(n0, n1):
    for n in range(int(n0), int(n1)):
        print(n, int(n * 0.6), int(n * 0.2))


def cmd_gensplit(path, n, seed):
    g = random.Random(20240601)
    emotions = sorted(TO7)
    data = []
    cid = 0
    for _ in range(int(n)):
        cid += g.randint(1, 3)
        conv = {"conversation_id": "%05d" % cid,
                "speaker_profile": {"age": "young", "gender": "male", "timbre": "mid", "ID": g.randint(1, 99)},
                "listener_profile": {"age": "elderly", "gender": "female", "timbre": "low", "ID": g.randint(1, 99)},
                "topic": "Family", "turns": []}
        if g.random() < 0.05:
            data.append(conv)
            continue
        ids = sorted(g.sample(range(6), g.randint(1, 4)))
        emo = g.choice(emotions)
        for t in ids:
            hist = [{"index": i, "role": "listener" if i % 2 else "speaker", "utterance": "u%d" % i}
                    for i in range(2 * t + 1)]
            turn = {"turn_id": str(t), "context": "c", "dialogue_history": hist, "response": "r%d" % t}
            if not (t == ids[0] and g.random() < 0.1):
                turn["chain_of_empathy"] = {"speaker_emotion": emo, "event_scenario": "e",
                                            "emotion_cause": "c", "goal_to_response": "g"}
            conv["turns"].append(turn)
        g.shuffle(conv["turns"])
        data.append(conv)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)

    def first_turn(c):
        return min(c["turns"], key=lambda t: int(t["turn_id"]))

    ids = [c["conversation_id"] for c in data
           if c["turns"] and first_turn(c).get("chain_of_empathy", {}).get("speaker_emotion")]
    random.seed(eval(seed))
    random.shuffle(ids)
    a, b = int(len(ids) * 0.6), int(len(ids) * 0.2)
    print("train", *ids[:a])
    print("test", *ids[a:a + b])
    print("val", *ids[a + b:])


def cmd_bow(path):
    # One BLAS/OpenMP thread: on a loaded 2-core machine their spinning threads cost 5x the time.
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    texts, labels = [], []
    for c in data:
        if not c["turns"]:
            continue
        last = max(c["turns"], key=lambda t: int(t["turn_id"]))
        utts = [h["utterance"] for h in last["dialogue_history"]] + [last.get("response", "")]
        texts.append(" ".join(utts))
        labels.append(TO7[last["chain_of_empathy"]["speaker_emotion"]])
    x = CountVectorizer(min_df=2).fit_transform(texts)
    y = np.array(labels)
    acc = cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=5).mean()
    print("%.4f %.4f" % (acc, np.bincount(y).max() / len(y)))


if __name__ == "__main__":
    {"ops": cmd_ops, "shuffle": cmd_shuffle, "sizes": cmd_sizes, "gensplit": cmd_gensplit,
     "bow": cmd_bow}[sys.argv[1]](*sys.argv[2:])
