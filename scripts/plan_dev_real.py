"""Write eventsep/data/dev_real.json, the committed plan of the real development set (48 held-out items)."""

import json
import sys

from eventsep.corpus import real

COMMAND = "python3 scripts/plan_dev_real.py"

if __name__ == "__main__":
    plan = real.plan_set(range(0, 48))
    plan["command"] = COMMAND
    path = sys.argv[1] if len(sys.argv) > 1 else "eventsep/data/dev_real.json"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(plan, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
