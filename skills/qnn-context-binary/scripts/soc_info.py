#!/usr/bin/env python3
"""The SoCs the bot can target: HTP arch, soc_model id, fp16/int16 support, binary portability.

Usage: soc_info.py [SOC]
"""

import sys


def main() -> int:
    from bot.targets import SOCS

    names = [a.upper() for a in sys.argv[1:]] or sorted(SOCS, key=lambda n: SOCS[n].htp_arch)
    for n in names:
        s = SOCS.get(n)
        if s is None:
            print(f"unknown SoC {n!r}; known: {', '.join(sorted(SOCS))}")
            return 2
        runs_on = sorted(o.name for o in SOCS.values() if o.htp_arch >= s.htp_arch)
        print(f"{s.name}: soc_model {s.soc_model}, HTP v{s.htp_arch}, fp16 {'yes' if s.fp16 else 'no'}, "
              f"int16 {'yes' if s.int16 else 'no'}; a binary prepared here runs on: {', '.join(runs_on)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
