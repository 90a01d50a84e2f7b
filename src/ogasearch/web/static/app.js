// Upload by file picker, drag-and-drop or paste; copy attribution. Searching by words works without this.
(function () {
  "use strict";
  const form = document.getElementById("drop");
  const input = document.getElementById("file");
  const status = document.getElementById("upload-status");

  function filters() {
    const keep = new URLSearchParams();
    const search = document.getElementById("search");
    if (search) {
      for (const [key, value] of new FormData(search)) {
        if (key !== "imsi" && value && value !== "all") keep.set(key, value);
      }
    }
    return keep;
  }

  async function upload(file) {
    if (!file) return;
    status.textContent = "Searching for " + (file.name || "the pasted image") + "…";
    const body = new FormData();
    body.append("file", file, file.name || "pasted.png");
    try {
      const response = await fetch("/upload?" + filters().toString(), {
        method: "POST", body: body, headers: { "Accept": "application/json" },
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || ("HTTP " + response.status));
      window.location.assign(answer.url);
    } catch (err) {
      status.textContent = "Sorry: " + err.message;
    }
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
      event.preventDefault();
      form.classList.remove("over");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) upload(file);
    });
    document.addEventListener("paste", (event) => {
      const items = event.clipboardData ? Array.from(event.clipboardData.files) : [];
      const image = items.find((f) => f.type.startsWith("image/"));
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
    setTimeout(() => { button.textContent = "copy attribution"; }, 1500);
  });
})();
