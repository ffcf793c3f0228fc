// An audio player with its waveform (wavesurfer.js). The audio is fetched when the player is
// first shown on screen, so a long list of clips does not download every file at once.
import { h } from "./dom.js";
import WaveSurfer from "./vendor/wavesurfer.esm.js";

const visible = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    visible.unobserve(entry.target);
    entry.target.load();
  }
});

export function waveform(url, title) {
  const button = h("button", { type: "button", class: "play", "aria-label": `Play ${title}`, disabled: true }, "▶");
  const wave = h("div", { class: "wave" });
  const time = h("small", { class: "time" }, "");
  const player = h("div", { class: "player", title }, button, wave, time);
  player.load = () => {
    const surfer = WaveSurfer.create({
      container: wave, url, height: 40, waveColor: "#94a3b8", progressColor: "#2563eb", cursorWidth: 1,
      barWidth: 2, barGap: 1, dragToSeek: true,
    });
    const show = () => { time.textContent = `${surfer.getCurrentTime().toFixed(1)} / ${surfer.getDuration().toFixed(1)} s`; };
    surfer.on("ready", () => { button.disabled = false; show(); player.dataset.ready = "true"; });
    surfer.on("timeupdate", show);
    surfer.on("play", () => { button.textContent = "❚❚"; });
    surfer.on("pause", () => { button.textContent = "▶"; });
    surfer.on("error", (error) => { time.textContent = `cannot play: ${error.message || error}`; });
    button.addEventListener("click", () => surfer.playPause());
    player.surfer = surfer;
  };
  visible.observe(player);
  return player;
}
