"""aureport's table of named keys (audit 3.0.9, auparse/tty_named_keys.h, the large
version that Debian's /usr/sbin/aureport carries), shared by the renderer (render.py)
and the line rebuilder (typed_lines.py)."""

from __future__ import annotations

# aureport's named keys after ESC, 0x9B (CSI) and 0x8F (SS3): "name seq seq … |".
_ESC_KEYS = """
A1 Ow | A3 Oy | B2 [218z OE Or Ou [E [G | C1 Op Oq | C3 On Os | F1 [224z [11~ [[A OP p |
F10 [233z [21~ OY Ox [V | F11 [192z [234z [23~ OZ [W | F12 [235z [24~ O[ [X |
F13 [11;2~ [25~ O2P [Y | F14 [12;2~ [26~ O2Q | F15 [13;2~ [28~ O2R [a |
F16 [14;2~ [29~ O2S [b | F17 [15;2~ [198z [31~ | F18 [17;2~ [199z [32~ |
F19 [18;2~ [33~ [e | F2 [225z [12~ [[B OQ [N q | F20 [19;2~ [201z [34~ [f |
F21 [20;2~ [23$ [g | F22 [21;2~ [24$ [h | F23 [23;2~ [11^ [i | F24 [24;2~ [12^ [j |
F25 [11;5~ [13^ O5P [k | F26 [12;5~ [14^ O5Q [l | F27 [13;5~ [15^ O5R [m |
F28 [14;5~ [17^ O5S [n | F29 [15;5~ [18^ [o | F3 [226z [13~ [[C OR [O r |
F30 [17;5~ [19^ [p | F31 [18;5~ [208z [20^ [q | F32 [19;5~ [209z [21^ [r |
F33 [20;5~ [210z [23^ [s | F34 [21;5~ [211z [24^ [t | F35 [23;5~ [212z [25^ [u |
F36 [24;5~ [213z [26^ [v | F37 [11;6~ [28^ O6P [w | F38 [12;6~ [215z [29^ O6Q [x |
F39 [13;6~ [31^ O6R [y | F4 [227z [14~ [[D OS [P s | F40 [14;6~ [217z [32^ O6S [z |
F41 [15;6~ [33^ [@ | F42 [17;6~ [219z [34^ [[ | F43 [18;6~ [23@ [\\ |
F44 [19;6~ [221z [24@ [] | F45 [20;6~ [^ | F46 [21;6~ [_ | F47 [23;6~ [` | F48 [24;6~ [{ |
F49 [11;3~ O3P | F5 [228z [15~ [[E OT Ot [Q t | F50 [12;3~ O3Q | F51 [13;3~ O3R |
F52 [14;3~ O3S | F53 [15;3~ | F54 [17;3~ | F55 [18;3~ | F56 [19;3~ | F57 [20;3~ |
F58 [21;3~ | F59 [23;3~ | F6 [229z [17~ OU [R u | F60 [24;3~ | F61 [11;4~ O4P |
F62 [12;4~ O4Q | F63 [13;4~ O4R | F7 [230z [18~ OV Ov [S v | F8 [231z [19~ OW Ol [T w |
F9 [232z [20~ OX [U | end [220z [4~ [8~ OF [F F | up OA [A A | back-tab [Z | clear J |
copy [197z | delete [3z [3~ [9 P | delete-eol [8^ | down OB [B B | find [200z | help [196z |
home [214z [1~ [7~ OH [H h | insert [2z [2~ [L Q | insert-line [30~ | left OD [D D |
mouse [>M [M | options [194z | page-down [222z [6~ S | page-up [216z [5~ [I T |
resume [193z | right OC [C C | scroll-backward O1;2A [1;2A O2A |
scroll-forward O1;2B [1;2B O2B | send OM | shift-del [3;2~ [3;5~ [3$ |
shift-end [1;2F O5F [8$ | shift-home [1;2H O5H [7$ | shift-insert [2;2~ [2;5~ [2$ 2$ |
shift-left O1;2D [1;2D O2D O5D [d | shift-next [6;2~ [6;5~ [6$ |
shift-previous [5;2~ [5;5~ [5$ | shift-right O1;2C [1;2C O2C O5C [c | undo [195z |
"""
_CSI_KEYS = """
F1 11~ | F10 21~ | F11 23~ | F12 24~ | F13 25~ | F14 26~ | F15 28~ | F16 29~ | F17 31~ |
F18 32~ | F19 33~ | F2 12~ | F20 34~ | F3 13~ | F4 14~ | F5 15~ | F6 17~ | F7 18~ | F8 19~ |
F9 20~ | end 4~ | back-tab Z | delete 3~ | home 1~ | insert 2~ | mouse M | page-down 6~ |
page-up 5~ |
"""
_SS3_KEYS = """
A1 w | A3 u | B2 y | C1 q | C3 s | up A | begin E | down B | left D | right C | send M |
"""


def _build_keys() -> dict:
    keys = {b"\x08": "backspace", b"\t": "tab", b"\n": "nl", b"\r": "ret", b"\x7f": "backspace",
            b"\x1b": "esc", b"\x1b\t": "back-tab"}
    for c in range(1, 0x1B):
        keys.setdefault(bytes((c,)), "^" + chr(0x40 + c))
    for prefix, table in ((b"\x1b", _ESC_KEYS), (b"\x9b", _CSI_KEYS), (b"\x8f", _SS3_KEYS)):
        for entry in table.split("|"):
            words = entry.split()
            for seq in words[1:]:
                keys[prefix + seq.encode()] = words[0]
    return keys


#: Byte sequence -> key name, exactly aureport's table (tests check every entry against it).
NAMED_KEYS: dict = _build_keys()
