use wyrmhole::Model;

#[derive(Model)]
struct TodoItem<T> {
    id: i32,
    text: T,
}

fn main() {}
