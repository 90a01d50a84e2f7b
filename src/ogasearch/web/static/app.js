// Upload by file picker, drag-and-drop or paste; tidy search URLs; copy attribution.
// Every search still works without this script (plain forms and links).
(function () {
  "use strict";
  const search = document.getElementById("search");
  const form = document.getElementById("drop");
  const input = document.getElementById("file");
  const status = document.getElementById("upload-status");
  let busy = false;

  // The filters chosen in the search form, left out when they are the defaults, so links stay short.
  function filters() {
    const keep = new URLSearchParams();
    if (search) {
      for (const [key, value] of new FormData(search)) {
        if (key !== "imsi" && value && value !== "all") keep.set(key, value);
      }
    }
    return keep;
  }

  function searchUrl(words) {
    const query = new URLSearchParams({ imsi: words });
    for (const [key, value] of filters()) query.set(key, value);
    return "/?" + query.toString();
  }

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("failed", Boolean(failed));
  }

  // A words or image-URL search goes to the short shareable URL: /?imsi=… plus only the filters that are set.
  if (search) {
    search.addEventListener("submit", (event) => {
      event.preventDefault();
      const words = search.elements.imsi.value.trim();
      if (!words) { search.elements.imsi.focus(); return; }
      window.location.assign(searchUrl(words));
    });
  }

  // Coming back to this page (the back button) must not leave it stuck on an earlier upload.
  window.addEventListener("pageshow", () => {
    busy = false;
    if (status) say("", false);
  });

  async function upload(file) {
    if (!file || busy) return;
    busy = true;
    say("Searching for " + (file.name || "the pasted image") + "…", false);
    const body = new FormData();
    body.append("file", file, file.name || "pasted.png");
    try {
      const response = await fetch("/upload?" + filters().toString(), {
        method: "POST", body: body, headers: { "Accept": "application/json" },
      });
      let answer = {};
      try { answer = await response.json(); } catch (err) { /* not JSON: a proxy's error page */ }
      if (!response.ok || !answer.url) {
        throw new Error(answer.error || ("the server answered HTTP " + response.status));
      }
      window.location.assign(answer.url);
    } catch (err) {
      busy = false;
      say("Sorry: " + err.message, true);
      if (input) input.value = "";  // choosing the same file again fires "change" again
    }
  }

  // The first http(s) URL in a drop that carries no file (an image dragged from another page's link).
  function droppedUrl(data) {
    const lines = (data.getData("text/uri-list") || "").split(/\r?\n/);
    return lines.map((line) => line.trim()).find((line) => /^https?:\/\//i.test(line));
  }

  if (form && input) {
    input.addEventListener("change", () => upload(input.files[0]));
    for (const name of ["dragenter", "dragover"]) {
      document.addEventListener(name, (event) => { event.preventDefault(); form.classList.add("over"); });
    }
    document.addEventListener("dragleave", (event) => {
      if (!event.relatedTarget) form.classList.remove("over");
    });
    document.addEventListener("drop", (event) => {
      form.classList.remove("over");
      const data = event.dataTransfer;
      if (!data) return;
      const file = data.files[0];
      if (file) {
        event.preventDefault();
        upload(file);
        return;
      }
      const url = event.target === search?.elements.imsi ? null : droppedUrl(data);
      if (url) {
        event.preventDefault();
        window.location.assign(searchUrl(url));
      }
    });
    document.addEventListener("paste", (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
      const image = files.find((f) => f.type.startsWith("image/")) || files[0];
      if (image) { event.preventDefault(); upload(image); }
    });
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const text = button.dataset.credit;
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "copied";
    clearTimeout(button.resetTimer);
    button.resetTimer = setTimeout(() => { button.textContent = "copy attribution"; }, 1500);
  });
})();
