"""ONNX graph rewrites as a library, used by the stages (optimize applies rules, quantize / validate /
package carry or run the host part) and by the repair loop (which proposes rules from failures).

- `bot.graph.rule`: what a rule is (`GraphRule`) and how onnxscript patterns are applied;
- `bot.graph.rules`: every rule, one module each, in one explicit tuple (`RULES`), and
  `apply_rewrites` (the rules a repair chose, by id, in order);
- `bot.graph.host_part`: the artifact format of a graph tail cut out to run on the host CPU;
- `bot.graph.infinite_bounds`: the exact cleanup the optimize stage applies to every graph (also the
  rule `infinite-bound`), importable without the catalogue;
- `bot.graph.irutil`: small onnx_ir helpers the rules share.

This package imports nothing from the rest of the bot but `bot.errors`, and this module imports
nothing, so reading a host part does not load the rewriter.
"""
