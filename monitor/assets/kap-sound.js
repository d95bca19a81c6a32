// Alarm sound in the browser (Web Audio), after the nurse enables it: browsers play no sound before a
// user gesture. Patterns after IEC 60601-1-8 (clinical.md): high = 2 bursts of 5 pulses, repeated;
// medium = 3 pulses, repeated less often; low = 1-2 pulses, rarely. The page pushes the priority to sound
// (or null) into the `alarm-sound` store; acknowledged and audio-paused alarms are not sounded.
(function () {
  const PATTERNS = {
    high: { freq: 960, pulses: [5, 5], gap: 0.125, pulse: 0.09, burstGap: 0.4, every: 5000 },
    medium: { freq: 700, pulses: [3], gap: 0.2, pulse: 0.15, burstGap: 0, every: 8000 },
    low: { freq: 520, pulses: [2], gap: 0.25, pulse: 0.2, burstGap: 0, every: 16000 },
  };
  let ctx = null;
  let timer = null;
  let current = null;

  function beep(freq, start, length) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.2, start + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + length);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + length + 0.02);
  }

  function play(priority) {
    const p = PATTERNS[priority];
    if (!ctx || !p) return;
    let t = ctx.currentTime + 0.05;
    for (const count of p.pulses) {
      for (let i = 0; i < count; i++) { beep(p.freq, t, p.pulse); t += p.pulse + p.gap; }
      t += p.burstGap;
    }
  }

  function sound(priority) {
    if (priority === current) return;
    current = priority;
    if (timer) { clearInterval(timer); timer = null; }
    if (priority && ctx) {
      play(priority);
      timer = setInterval(() => play(priority), PATTERNS[priority].every);
    }
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    kap: {
      enableSound: function (n) {
        if (!n) return window.dash_clientside.no_update;
        const Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) return "this browser cannot play alarm sounds";
        if (!ctx) ctx = new Ctx();
        ctx.resume();
        const waiting = current; current = null; sound(waiting);
        return "sound on";
      },
      sound: function (priority) {
        sound(priority || null);
        return window.dash_clientside.no_update;
      },
    },
  });
})();
