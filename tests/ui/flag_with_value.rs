use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    id: i32,
    #[wyrm(update = true, skip)]
    text: String,
    #[wyrm(route = "x", update)]
    done: bool,
}

fn main() {}
