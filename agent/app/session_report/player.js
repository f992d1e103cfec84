/* agentd session report: a small terminal emulator and player for tlog recordings.
   No network, no dependencies. It knows what shells, ls, cat, vim, top and less write:
   text, CR/LF/BS/TAB, cursor movement, erase, insert/delete lines and characters,
   scroll regions, the alternate screen; colours and attributes are ignored (the text is
   what an auditor reads). Frames: [[seconds, text], ...] in a JSON script element. */
"use strict";
(function () {
  function Term(cols, rows) { this.resize(cols, rows); this.reset(); }
  Term.prototype.resize = function (cols, rows) { this.cols = cols; this.rows = rows; };
  Term.prototype.blank = function () { var a = []; for (var i = 0; i < this.cols; i++) a.push(" "); return a; };
  Term.prototype.reset = function () {
    this.main = []; for (var i = 0; i < this.rows; i++) this.main.push(this.blank());
    this.alt = null; this.buf = this.main; this.x = 0; this.y = 0; this.top = 0; this.bot = this.rows - 1;
    this.saved = [0, 0]; this.state = 0; this.seq = ""; this.wrap = false;
  };
  Term.prototype.scrollUp = function (top, bot, n) {
    for (var i = 0; i < n; i++) { this.buf.splice(top, 1); this.buf.splice(bot, 0, this.blank()); }
  };
  Term.prototype.scrollDown = function (top, bot, n) {
    for (var i = 0; i < n; i++) { this.buf.splice(bot, 1); this.buf.splice(top, 0, this.blank()); }
  };
  Term.prototype.lf = function () {
    if (this.y === this.bot) this.scrollUp(this.top, this.bot, 1);
    else if (this.y < this.rows - 1) this.y++;
  };
  Term.prototype.put = function (ch) {
    if (this.wrap) { this.x = 0; this.lf(); this.wrap = false; }
    this.buf[this.y][this.x] = ch;
    if (this.x === this.cols - 1) this.wrap = true; else this.x++;
  };
  Term.prototype.clamp = function () {
    this.x = Math.max(0, Math.min(this.cols - 1, this.x));
    this.y = Math.max(0, Math.min(this.rows - 1, this.y)); this.wrap = false;
  };
  Term.prototype.erase = function (row, from, to) { for (var i = from; i < to; i++) this.buf[row][i] = " "; };
  Term.prototype.csi = function (seq) {
    var fin = seq[seq.length - 1], priv = seq[0] === "?", body = seq.slice(priv ? 1 : 0, -1);
    var p = body.split(";").map(function (v) { return parseInt(v, 10) || 0; });
    var n = p[0] || 1, i;
    switch (fin) {
      case "A": this.y -= n; break;
      case "B": case "e": this.y += n; break;
      case "C": case "a": this.x += n; break;
      case "D": this.x -= n; break;
      case "E": this.y += n; this.x = 0; break;
      case "F": this.y -= n; this.x = 0; break;
      case "G": case "`": this.x = n - 1; break;
      case "d": this.y = n - 1; break;
      case "H": case "f": this.y = (p[0] || 1) - 1; this.x = (p[1] || 1) - 1; break;
      case "J":
        if (p[0] === 0) { this.erase(this.y, this.x, this.cols); for (i = this.y + 1; i < this.rows; i++) this.erase(i, 0, this.cols); }
        else if (p[0] === 1) { this.erase(this.y, 0, this.x + 1); for (i = 0; i < this.y; i++) this.erase(i, 0, this.cols); }
        else for (i = 0; i < this.rows; i++) this.erase(i, 0, this.cols);
        break;
      case "K":
        if (p[0] === 0) this.erase(this.y, this.x, this.cols);
        else if (p[0] === 1) this.erase(this.y, 0, this.x + 1);
        else this.erase(this.y, 0, this.cols);
        break;
      case "L": if (this.y >= this.top && this.y <= this.bot) this.scrollDown(this.y, this.bot, n); break;
      case "M": if (this.y >= this.top && this.y <= this.bot) this.scrollUp(this.y, this.bot, n); break;
      case "P": for (i = 0; i < n; i++) { this.buf[this.y].splice(this.x, 1); this.buf[this.y].push(" "); } break;
      case "@": for (i = 0; i < n; i++) { this.buf[this.y].splice(this.x, 0, " "); this.buf[this.y].length = this.cols; } break;
      case "X": this.erase(this.y, this.x, Math.min(this.cols, this.x + n)); break;
      case "S": this.scrollUp(this.top, this.bot, n); break;
      case "T": this.scrollDown(this.top, this.bot, n); break;
      case "r": this.top = (p[0] || 1) - 1; this.bot = (p[1] || this.rows) - 1; this.x = 0; this.y = 0; break;
      case "s": this.saved = [this.x, this.y]; break;
      case "u": this.x = this.saved[0]; this.y = this.saved[1]; break;
      case "h": case "l":
        if (priv && (p[0] === 1049 || p[0] === 47 || p[0] === 1047)) {
          if (fin === "h" && !this.alt) {
            this.saved = [this.x, this.y]; this.alt = [];
            for (i = 0; i < this.rows; i++) this.alt.push(this.blank());
            this.buf = this.alt;
          } else if (fin === "l" && this.alt) {
            this.alt = null; this.buf = this.main; this.x = this.saved[0]; this.y = this.saved[1];
          }
        }
        break;
      default: break; // m (colours), n, t, q …: nothing to draw
    }
    this.clamp();
  };
  Term.prototype.write = function (s) {
    for (var k = 0; k < s.length; k++) {
      var c = s[k], code = s.charCodeAt(k);
      if (this.state === 1) { // after ESC
        if (c === "[") { this.state = 2; this.seq = ""; }
        else if (c === "]" || c === "P" || c === "_" || c === "^") { this.state = 3; }
        else if (c === "(" || c === ")" || c === "*" || c === "+" || c === "#") { this.state = 4; }
        else {
          this.state = 0;
          if (c === "7") this.saved = [this.x, this.y];
          else if (c === "8") { this.x = this.saved[0]; this.y = this.saved[1]; this.clamp(); }
          else if (c === "M") { if (this.y === this.top) this.scrollDown(this.top, this.bot, 1); else if (this.y > 0) this.y--; }
          else if (c === "D") this.lf();
          else if (c === "E") { this.x = 0; this.lf(); }
          else if (c === "c") this.reset();
        }
        continue;
      }
      if (this.state === 2) { // CSI parameters until a final byte
        this.seq += c;
        if (code >= 0x40 && code <= 0x7e) { this.state = 0; this.csi(this.seq); }
        continue;
      }
      if (this.state === 3) { // OSC/DCS: until BEL or ST
        if (c === "\x07") this.state = 0; else if (c === "\x1b") this.state = 5;
        continue;
      }
      if (this.state === 5) { this.state = c === "\\" ? 0 : 3; continue; }
      if (this.state === 4) { this.state = 0; continue; } // charset designation
      if (c === "\x1b") this.state = 1;
      else if (c === "\r") { this.x = 0; this.wrap = false; }
      else if (c === "\n" || c === "\x0b" || c === "\x0c") { this.lf(); this.wrap = false; }
      else if (c === "\b") { if (this.x > 0) this.x--; this.wrap = false; }
      else if (c === "\t") { this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8); }
      else if (code >= 0x20 && code !== 0x7f) this.put(c);
    }
  };
  Term.prototype.text = function () {
    return this.buf.map(function (r) { return r.join("").replace(/\s+$/, ""); }).join("\n");
  };

  function fmt(t) {
    var s = Math.floor(t), m = Math.floor(s / 60);
    return m + ":" + ("0" + (s % 60)).slice(-2);
  }

  function Player(root) {
    var data = JSON.parse(root.querySelector("script.frames").textContent);
    this.frames = data.frames; this.cols = data.cols; this.rows = data.rows;
    this.duration = this.frames.length ? this.frames[this.frames.length - 1][0] : 0;
    this.screen = root.querySelector(".screen"); this.clock = root.querySelector(".clock");
    this.bar = root.querySelector(".seek"); this.button = root.querySelector(".play");
    this.speedSel = root.querySelector(".speed"); this.root = root;
    this.bar.max = String(Math.max(this.duration, 0.001));
    this.term = new Term(this.cols, this.rows); this.i = 0; this.t = 0; this.timer = null;
    var self = this;
    this.button.addEventListener("click", function () { if (self.timer) self.pause(); else self.play(); });
    this.bar.addEventListener("input", function () { self.seek(parseFloat(self.bar.value)); });
    this.render();
  }
  Player.prototype.render = function () {
    this.screen.textContent = this.term.text();
    this.clock.textContent = fmt(this.t) + " / " + fmt(this.duration);
    this.bar.value = String(this.t);
    this.root.setAttribute("data-time", this.t.toFixed(3));
    this.root.setAttribute("data-frame", String(this.i));
  };
  Player.prototype.seek = function (t) {
    this.term.reset(); this.i = 0; this.advanceTo(t); this.render();
  };
  Player.prototype.advanceTo = function (t) {
    while (this.i < this.frames.length && this.frames[this.i][0] <= t) {
      this.term.write(this.frames[this.i][1]); this.i++;
    }
    this.t = Math.min(t, this.duration);
  };
  Player.prototype.play = function () {
    var self = this, last = Date.now();
    if (this.i >= this.frames.length) this.seek(0);
    this.button.textContent = "Pause"; this.root.setAttribute("data-playing", "1");
    this.timer = setInterval(function () {
      var now = Date.now(), speed = parseFloat(self.speedSel.value) || 1;
      var dt = Math.min((now - last) / 1000, 0.5) * speed; last = now;
      // Long idle stretches (a person thinking) play as at most two seconds.
      var next = self.i < self.frames.length ? self.frames[self.i][0] : self.duration;
      var t = self.t + dt;
      if (next - self.t > 2 && t < next - 2) t = next - 2 + dt;
      self.advanceTo(t); self.render();
      if (self.i >= self.frames.length) self.pause();
    }, 50);
  };
  Player.prototype.pause = function () {
    clearInterval(this.timer); this.timer = null;
    this.button.textContent = "Play"; this.root.setAttribute("data-playing", "0");
  };

  window.AgentdTerm = Term;
  document.addEventListener("DOMContentLoaded", function () {
    var players = document.querySelectorAll(".player");
    for (var i = 0; i < players.length; i++) {
      var p = new Player(players[i]);
      players[i].agentdPlayer = p;
      if (location.hash === "#autoplay") p.play();
      else if (location.hash === "#end") { p.seek(p.duration); }
    }
  });
})();
