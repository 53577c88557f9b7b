// Dunwell customer portal: the invoice and credit-note lists with their documents
// (viewed as HTML, downloaded as PDF, fetched with the session token), and the
// notifications, dismissed at once and restored if the server refuses.
"use strict";

(function () {
  const P = window.DunwellPortal;
  const { api, say, why, money, day, cell } = P;
  const announce = () => P.announce();
  // Why a credit note was issued, in the customer's words (the workflow's reasons).
  const NOTE_REASONS = {
    proration_charge_failed: "plan change not completed; nothing is owed",
  };

  // --- documents ------------------------------------------------------------------------

  async function fetchDocument(path) {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + P.token } });
    if (!response.ok) {
      const err = new Error("the document is not available (" + response.status + ")");
      err.status = response.status;
      throw err;
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="([^"]+)"/.exec(disposition);
    return { blob: await response.blob(), filename: named ? named[1] : "document.pdf" };
  }

  function documentButtons(row, path, label) {
    const td = document.createElement("td");
    const view = document.createElement("button");
    view.type = "button";
    view.className = "link";
    view.textContent = "View";
    view.setAttribute("aria-label", "View " + label);
    view.addEventListener("click", async () => {
      try {
        const { blob } = await fetchDocument(path);
        window.open(URL.createObjectURL(blob), "_blank");
      } catch (err) {
        say(err.message, true);
      }
    });
    const pdf = document.createElement("button");
    pdf.type = "button";
    pdf.className = "link";
    pdf.textContent = "Download PDF";
    pdf.setAttribute("aria-label", "Download " + label + " as PDF");
    pdf.addEventListener("click", async () => {
      try {
        const { blob, filename } = await fetchDocument(path + ".pdf");
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = filename;
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      } catch (err) {
        say(err.message, true);
      }
    });
    td.append(view, pdf);
    row.appendChild(td);
  }

  async function loadDocuments() {
    const [invoices, notes] = await Promise.all([
      api("GET", "/v1/portal/invoices"),
      api("GET", "/v1/portal/credit-notes"),
    ]);
    const invoiceBody = document.querySelector("#invoices tbody");
    invoiceBody.textContent = "";
    for (const inv of invoices.items) {
      const row = document.createElement("tr");
      row.dataset.invoiceId = inv.id;
      cell(row, inv.number || inv.id);
      cell(row, day(inv.period_start) + " → " + day(inv.period_end));
      cell(row, inv.status);
      cell(row, money(inv.tax_total || 0, inv.currency), true);
      cell(row, money(inv.total || 0, inv.currency), true);
      documentButtons(row, "/v1/portal/invoices/" + encodeURIComponent(inv.id) + "/document",
        "invoice " + (inv.number || inv.id));
      invoiceBody.appendChild(row);
    }
    const numbers = new Map(invoices.items.map((inv) => [inv.id, inv.number || inv.id]));
    const noteBody = document.querySelector("#credit-notes tbody");
    noteBody.textContent = "";
    for (const note of notes.items) {
      const row = document.createElement("tr");
      row.dataset.creditNoteId = note.id;
      cell(row, note.number);
      cell(row, numbers.get(note.invoice_id) || note.invoice_id);
      cell(row, NOTE_REASONS[note.reason] || note.reason.replace(/_/g, " "));
      cell(row, money(note.total, note.currency), true);
      documentButtons(row, "/v1/portal/credit-notes/" + encodeURIComponent(note.id) +
        "/document", "credit note " + note.number);
      noteBody.appendChild(row);
    }
  }

  // --- notifications ----------------------------------------------------------------------

  async function loadNotifications() {
    const list = await api("GET", "/v1/portal/notifications");
    const box = document.getElementById("notifications");
    const ul = box.querySelector("ul");
    ul.textContent = "";
    for (const note of list.items) {
      const li = document.createElement("li");
      li.dataset.key = note.key;
      li.dataset.kind = note.kind;
      const text = document.createElement("div");
      const subject = document.createElement("strong");
      subject.textContent = note.subject;
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = " · " + day(note.created_at);
      const body = document.createElement("p");
      // The email's first two sentences after its greeting; the link is this page.
      const lines = note.body.split("\n").map((line) => line.trim())
        .filter((line) => line && !/^(hello|hi|dear)\b/i.test(line) && !/^https?:/.test(line));
      body.textContent = lines.slice(0, 2).join(" ");
      text.append(subject, when, body);
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "secondary";
      dismiss.textContent = "Dismiss";
      dismiss.setAttribute("aria-label", "Dismiss: " + note.subject);
      dismiss.addEventListener("click", async () => {
        li.hidden = true; // at once; back if the server refuses
        box.hidden = ![...ul.children].some((c) => !c.hidden);
        try {
          await api("POST", "/v1/portal/notifications/" + encodeURIComponent(note.key) +
            "/dismiss");
          li.remove();
          announce();
        } catch (err) {
          li.hidden = false;
          box.hidden = false;
          say("The notification was not dismissed: " + why(err), true);
        }
      });
      li.append(text, dismiss);
      ul.appendChild(li);
    }
    box.hidden = list.items.length === 0;
  }


  Object.assign(P, { loadDocuments, loadNotifications });
})();
