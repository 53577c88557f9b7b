// Dunwell customer portal: drawing a subscription (its state with the pending intents
// laid over it) and a plan change's preview, with the tax per rate and the legal
// mentions exactly as the invoice prints them (api/documents).
"use strict";

(function () {
  const P = window.DunwellPortal;
  const { money, day, moment, rate, REASON_NOTES, field, action, cell, cardText, accessText } = P;
  const planName = (id) => P.planName(id);

  function renderSubscription(view) {
    const section = view.section;
    const sub = view.shown();
    const pending = view.intents.filter((i) => !i.done);
    section.dataset.pending = pending.length ? "true" : "false";
    const pendingLine = field(section, "pending-line");
    pendingLine.hidden = !pending.length;
    pendingLine.textContent = pending.length
      ? "Pending: " + pending.map((i) => i.label).join("; ")
      : "";

    const planField = field(section, "plan");
    planField.textContent = sub.plan_name || planName(sub.plan_id);
    if (pending.some((i) => i.kind === "change")) {
      const badge = document.createElement("span");
      badge.className = "pending-badge";
      badge.textContent = "pending";
      planField.appendChild(badge);
    }
    field(section, "status").textContent = sub.status;
    field(section, "access").textContent = accessText(sub);
    field(section, "period").textContent =
      day(sub.current_period_start) + " → " + day(sub.current_period_end);
    field(section, "price").textContent =
      sub.amount === null ? "—" : money(sub.amount, sub.currency) + " every " + sub.interval;
    field(section, "card").textContent = cardText(sub);

    const pendingAction = sub.pending_action;
    const waiting = Boolean(pendingAction && pendingAction.status === "waiting");
    const banner = field(section, "action-banner");
    banner.hidden = !waiting;
    field(section, "action-text").textContent = waiting
      ? "Your bank needs you to confirm the payment of " +
        money(pendingAction.amount, pendingAction.currency) + " (invoice " +
        pendingAction.invoice_id + ") before " + day(pendingAction.deadline) +
        ", or the renewal will fail."
      : "";
    if (!waiting) field(section, "action-error").hidden = true;

    const problem = sub.payment_problem;
    const showProblem = Boolean(problem) && !waiting &&
      ["past_due", "unpaid", "incomplete"].includes(sub.status);
    field(section, "problem-banner").hidden = !showProblem;
    field(section, "problem-text").textContent = showProblem
      ? problem.message + " Amount due: " + money(problem.amount, problem.currency) + "."
      : "";
    if (showProblem && problem.decline_code) {
      field(section, "problem-banner").dataset.declineCode = problem.decline_code;
    }

    const upgrade = sub.upgrade_authentication;
    const challengeHere = view.intents.some((i) => i.challenging);
    field(section, "upgrade-banner").hidden = !upgrade || challengeHere;
    field(section, "upgrade-text").textContent = upgrade
      ? "Your change to " + planName(upgrade.to_plan_id) + " (" +
        money(upgrade.amount, upgrade.currency) + ") waits for your bank's confirmation " +
        "until " + moment(upgrade.deadline) + ". Without it the change is cancelled " +
        "and nothing is charged."
      : "";

    const cancelNotice = field(section, "cancel-notice");
    cancelNotice.hidden = !sub.cancel_at_period_end;
    cancelNotice.textContent = sub.cancel_at_period_end
      ? "Cancels on " + day(sub.current_period_end) + "; access continues until then."
      : "";
    const scheduled = field(section, "pending-notice");
    scheduled.hidden = !sub.pending_plan_id;
    scheduled.textContent = sub.pending_plan_id
      ? "Switching to " + planName(sub.pending_plan_id) + " on " +
        day(sub.current_period_end) + "."
      : "";
    action(section, "cancel").hidden = sub.cancel_at_period_end;
    action(section, "undo-cancel").hidden = !sub.cancel_at_period_end;

    const select = field(section, "plan-select");
    const chosen = select.value;
    select.textContent = "";
    for (const plan of P.plans || []) {
      if (!plan.prices.some((p) => p.currency === sub.currency)) continue;
      if (plan.id === sub.plan_id && !sub.pending_plan_id) continue;
      const option = document.createElement("option");
      option.value = plan.id;
      const price = plan.prices.find((p) => p.currency === sub.currency);
      option.textContent = plan.name + " — " + money(price.amount, sub.currency);
      select.appendChild(option);
    }
    if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  function renderPreview(section, preview) {
    const body = field(section, "preview-lines").querySelector("tbody");
    body.textContent = "";
    const byRate = new Map();
    for (const line of preview.lines) {
      const row = document.createElement("tr");
      row.dataset.kind = line.kind;
      cell(row, line.description);
      cell(row, money(line.amount_excluding_tax, preview.currency), true);
      const rates = line.tax
        .filter((t) => t.rate_ppm > 0)
        .map((t) => t.jurisdiction + " " + rate(t.rate_ppm))
        .join(", ");
      cell(row, money(line.tax_amount, preview.currency) + (rates ? " (" + rates + ")" : ""), true);
      cell(row, money(line.amount_including_tax, preview.currency), true);
      body.appendChild(row);
      for (const t of line.tax) {
        const key = [t.jurisdiction, t.tax_type || "tax", t.rate_ppm, t.reason].join("|");
        const sum = byRate.get(key) || { t, taxable: 0, tax: 0 };
        sum.taxable += t.taxable_amount;
        sum.tax += t.tax_amount;
        byRate.set(key, sum);
      }
    }
    const rateBody = field(section, "preview-tax-rows").querySelector("tbody");
    rateBody.textContent = "";
    for (const key of [...byRate.keys()].sort()) {
      const { t, taxable, tax } = byRate.get(key);
      const row = document.createElement("tr");
      const type = t.tax_type || "tax";
      cell(row, t.jurisdiction);
      cell(row, type.length <= 4 ? type.toUpperCase() : type.replace(/_/g, " "));
      cell(row, rate(t.rate_ppm), true);
      cell(row, REASON_NOTES[t.reason] === undefined ? t.reason.replace(/_/g, " ")
        : REASON_NOTES[t.reason] || "—");
      cell(row, money(taxable, preview.currency), true);
      cell(row, money(tax, preview.currency), true);
      rateBody.appendChild(row);
    }
    field(section, "preview-tax-rows").hidden = byRate.size === 0;
    const when = {
      immediately: "charged now",
      period_end: "from " + day(preview.effective_at),
      trial_swap: "now (trial, nothing to pay)",
      withdraw_scheduled: "now (scheduled change withdrawn)",
    }[preview.effective];
    field(section, "preview-when").textContent = when;
    field(section, "preview-total").textContent = money(preview.total, preview.currency);
    field(section, "preview-tax").textContent =
      "including tax " + money(preview.tax_total, preview.currency) +
      (preview.tax_jurisdiction ? " (" + preview.tax_jurisdiction + ")" : "");
    const mentions = field(section, "preview-mentions");
    mentions.textContent = "";
    for (const text of preview.legal_mentions) {
      const p = document.createElement("p");
      p.textContent = text;
      mentions.appendChild(p);
    }
    mentions.hidden = preview.legal_mentions.length === 0;
    field(section, "preview").hidden = false;
  }


  Object.assign(P, { renderSubscription, renderPreview });
})();
