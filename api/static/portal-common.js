// Dunwell customer portal: the shared parts of the page's scripts (portal.js loads
// last). The API client, the message box, and every word and format the page shows:
// amounts, dates, rates, why a request was refused, the access and grace state.
"use strict";

(function () {
  const P = (window.DunwellPortal = window.DunwellPortal || {});
  const messageBox = document.getElementById("message");
  const token = () => P.token;

  function say(text, isError) {
    messageBox.textContent = text;
    messageBox.classList.toggle("error", Boolean(isError));
    messageBox.hidden = !text;
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: Object.assign(
          { Authorization: "Bearer " + token() },
          body === undefined ? {} : { "Content-Type": "application/json" }
        ),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_networkError) {
      const err = new Error("no connection to the billing service");
      err.status = 0;
      throw err;
    }
    if (response.status === 204) return {};
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = (payload && payload.error) || {};
      const err = new Error(error.message || "request failed (" + response.status + ")");
      err.code = error.code;
      err.status = response.status;
      throw err;
    }
    return payload;
  }

  // Why the server refused, in plain words (the API's code decides).
  const REFUSALS = {
    already_canceling: "Your subscription is already set to end at the end of the period.",
    not_canceling: "Your subscription is not set to end, so there is nothing to undo.",
    cancellation_pending:
      "Your subscription is set to end at the end of the period. Keep it first, then change plan.",
    plan_unchanged: "You are already on that plan.",
    change_in_progress: "Another plan change is waiting for its payment. Please finish it first.",
    subscription_canceled: "This subscription has ended.",
    subscription_ended: "This subscription has ended.",
    period_ended: "The billing period has just ended. Please try again in a moment.",
    invalid_state_for_action: "This subscription does not allow that change right now.",
    unknown_plan: "That plan is not available.",
    unknown_price: "That plan is not available in your currency.",
    invalid_payment_method: "That card could not be used. Please try another card.",
    not_started: "This subscription has not started yet.",
  };

  function why(err) {
    if (err.status === 0) return "No connection to the billing service; nothing was changed.";
    if (err.status === 429) {
      return "Too many requests in a short time; nothing was changed. Please wait a moment.";
    }
    if (err.status === 503) {
      return "The billing service is not reachable right now; nothing was changed. " +
        "Please try again shortly.";
    }
    const words = REFUSALS[err.code] || err.message;
    return words + " Nothing was changed.";
  }

  // Why the workflow reverted a plan change (PlanChangeOut.reason).
  function reversal(reason) {
    if (reason === "authentication_failed") {
      return "Your bank did not confirm the payment, so your plan was not changed. " +
        "Nothing was charged.";
    }
    if (reason === "authentication_timeout") {
      return "The payment was not confirmed in time, so your plan was not changed. " +
        "Nothing was charged.";
    }
    return "The payment for the change failed, so your plan was not changed. " +
      "Nothing was charged; please check your card.";
  }

  // Minor units to a display string, by string arithmetic (no floating point).
  function money(amount, currency) {
    const digits = new Intl.NumberFormat("en", { style: "currency", currency })
      .resolvedOptions().maximumFractionDigits;
    const negative = amount < 0;
    let text = String(Math.abs(amount));
    if (digits > 0) {
      text = text.padStart(digits + 1, "0");
      text = text.slice(0, -digits) + "." + text.slice(-digits);
    }
    return (negative ? "-" : "") + text + " " + currency;
  }

  function day(iso) {
    return iso ? iso.slice(0, 10) : "—";
  }

  function moment(iso) {
    return iso ? iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC" : "—";
  }

  // Parts per million to "19%" or "8.875%", as the invoice prints it.
  function rate(ppm) {
    const whole = Math.floor(ppm / 10000);
    const frac = ppm % 10000;
    return frac === 0 ? whole + "%" : (whole + "." + String(frac).padStart(4, "0"))
      .replace(/0+$/, "") + "%";
  }

  const REASON_NOTES = {
    standard_rated: "",
    reverse_charge: "reverse charge",
    customer_exempt: "exempt",
    not_collecting: "no tax collected",
    not_taxable: "not taxable",
  };

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function action(root, name) {
    return root.querySelector('[data-action="' + name + '"]');
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    row.appendChild(td);
    return td;
  }

  const BRANDS = {
    amex: "American Express",
    cartes_bancaires: "Cartes Bancaires",
    diners: "Diners Club",
    discover: "Discover",
    jcb: "JCB",
    mastercard: "Mastercard",
    unionpay: "UnionPay",
    visa: "Visa",
  };

  // "Visa •••• 4242 (12/2030)": brand, last four digits and expiry, nothing more.
  function cardText(sub) {
    if (sub.card_label) return sub.card_label;
    const card = sub.payment_method;
    if (!card || !card.last4) return sub.payment_method_id ? "card on file" : "none";
    const raw = card.brand || "";
    const brand = BRANDS[raw.toLowerCase()] ||
      (raw ? raw.charAt(0).toUpperCase() + raw.slice(1) : "Card");
    const expiry = card.exp_month && card.exp_year
      ? " (" + String(card.exp_month).padStart(2, "0") + "/" + card.exp_year + ")"
      : "";
    return brand + " •••• " + card.last4 + expiry;
  }

  // Why a confirmation failed, in words for the customer (the API's code decides).
  const CONFIRM_ERRORS = {
    no_pending_action: "There is no payment waiting for your confirmation any more.",
    payment_intent_mismatch:
      "This payment request has changed in the meantime. Please press Confirm payment again.",
    payment_not_completed:
      "Your bank has not confirmed the payment yet. Please try again.",
  };

  function planName(id) {
    const plan = (P.plans || []).find((p) => p.id === id);
    return plan ? plan.name : id;
  }

  // The access and grace state in words, with the date.
  function accessText(sub) {
    const end = day(sub.current_period_end);
    switch (sub.status) {
      case "trialing":
        return sub.cancel_at_period_end
          ? "Trial until " + end + "; your access ends then."
          : "Free trial until " + end + ".";
      case "active":
        return sub.cancel_at_period_end
          ? "Your access continues until " + end + ", when the subscription ends."
          : "Active. Renews on " + end + ".";
      case "past_due":
        if (sub.has_access && sub.grace_until) {
          return "Payment overdue. Your access continues until " + moment(sub.grace_until) +
            " while we retry the payment.";
        }
        return sub.has_access
          ? "Payment overdue. Your access continues while we retry the payment."
          : "Payment overdue. Access is paused until the payment succeeds.";
      case "unpaid":
        return "Unpaid. Access is paused until the invoice is paid.";
      case "incomplete":
        return "Waiting for the first payment.";
      case "canceled":
        return "This subscription has ended.";
      default:
        return sub.has_access ? "Active." : "No access.";
    }
  }


  Object.assign(P, {
    say, api, why, reversal, money, day, moment, rate, REASON_NOTES, field, action, cell,
    cardText, CONFIRM_ERRORS, accessText, planName,
  });
})();
